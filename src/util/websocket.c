/* websocket.c: RFC 6455 framing (see websocket.h). */
#include "util/websocket.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

int vo_ws_accept_key(const char *key, char ret[29])
{
    /* 16 bytes in base64: 22 characters and "==". */
    if (!key || strlen(key) != 24 || strcmp(key + 22, "=="))
        return -EINVAL;
    unsigned char decoded[18];
    if (EVP_DecodeBlock(decoded, (const unsigned char *)key, 24) != 18)
        return -EINVAL;
    char text[24 + sizeof(WS_GUID)];
    memcpy(text, key, 24);
    memcpy(text + 24, WS_GUID, sizeof(WS_GUID));
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(text, strlen(text), digest, &n, EVP_sha1(), NULL) || n != 20)
        return -EIO;
    EVP_EncodeBlock((unsigned char *)ret, digest, 20);
    return 0;
}

bool vo_ws_origin_allowed(const char *origin, const char *host)
{
    if (!origin)
        return true;
    const char *authority = strstr(origin, "://");
    return authority && host && *host && !strcasecmp(authority + 3, host);
}

size_t vo_ws_frame_header(uint8_t opcode, uint64_t len, uint8_t out[VO_WS_MAX_HEADER])
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

long vo_ws_parse(uint8_t *buf, size_t len, VoWsFrame *ret)
{
    if (len < 2)
        return 0;
    bool fin = buf[0] & 0x80;
    uint8_t opcode = buf[0] & 0x0f;
    if (buf[0] & 0x70)
        return -EPROTO; /* no extension was negotiated */
    if (!(buf[1] & 0x80))
        return -EPROTO; /* a client's frames are masked */
    bool control = opcode & 0x08;
    if (opcode > VO_WS_OP_BINARY && !(control && opcode <= VO_WS_OP_PONG))
        return -EPROTO;
    uint64_t plen = buf[1] & 0x7f;
    size_t pos = 2;
    if (plen == 126) {
        if (len < 4)
            return 0;
        plen = (uint64_t)buf[2] << 8 | buf[3];
        pos = 4;
    } else if (plen == 127) {
        if (len < 10)
            return 0;
        if (buf[2] & 0x80)
            return -EPROTO;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | buf[2 + i];
        pos = 10;
    }
    if (control && (plen > 125 || !fin))
        return -EPROTO;
    if (plen > VO_WS_MAX_PAYLOAD)
        return -EMSGSIZE;
    if (len < pos + 4)
        return 0;
    const uint8_t *mask = buf + pos;
    pos += 4;
    if (len - pos < plen)
        return 0;
    for (size_t i = 0; i < plen; i++)
        buf[pos + i] ^= mask[i % 4];
    ret->fin = fin;
    ret->opcode = opcode;
    ret->header_len = pos;
    ret->payload_len = (size_t)plen;
    return (long)(pos + plen);
}
