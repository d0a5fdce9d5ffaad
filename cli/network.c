/* network.c: the `vireo network ...` commands: create, list, show and delete
 * the virtual networks VMs' NICs attach to, each a request to /v1/networks. */
#include <string.h>

#include "cli.h"
#include "http.h"
#include "output.h"

static const char *const type_choices[] = { "nat", "isolated", "bridge", "vlan", "vxlan", NULL };

/* How many DHCP leases a network has; NULL when vireod did not say. */
static char *leases_count(const json_t *net)
{
    json_t *leases = json_object_get(net, "leases");
    return json_is_array(leases) ? vo_asprintf("%zu", json_array_size(leases)) : NULL;
}

/* "10.0.0.1, 10.0.0.2" */
static char *remotes_str(const json_t *net)
{
    return jstrs_joined(net, "remotes");
}

static void print_network(const json_t *net)
{
    const char *type = jstr(net, "type");
    json_t *dhcp = json_object_get(net, "dhcp");
    _cleanup_free_ char *pid = jint_str(net, "dnsmasq_pid");
    out_kv(stdout, "name:", jstr(net, "name"));
    out_kv(stdout, "type:", type);
    out_kv(stdout, "state:", jstr(net, "state"));
    out_kv(stdout, "project:", jstr(net, "project") ? jstr(net, "project") : "none (shared)");
    out_kv(stdout, "error:", jstr(net, "error"));
    out_kv(stdout, "subnet:", jstr(net, "subnet"));
    out_kv(stdout, "dhcp:", json_is_boolean(dhcp) ? (json_is_true(dhcp) ? "yes" : "no") : NULL);
    out_kv(stdout, "bridge:", jstr(net, "bridge"));
    if (type && strcmp(type, "vlan") == 0) {
        _cleanup_free_ char *vlan_id = jint_str(net, "vlan_id");
        out_kv(stdout, "uplink:", jstr(net, "uplink"));
        out_kv(stdout, "vlan id:", vlan_id);
    }
    if (type && strcmp(type, "vxlan") == 0) {
        _cleanup_free_ char *vni = jint_str(net, "vni");
        _cleanup_free_ char *remotes = remotes_str(net);
        _cleanup_free_ char *port = jint_str(net, "port");
        out_kv(stdout, "vni:", vni);
        out_kv(stdout, "remotes:", remotes);
        out_kv(stdout, "local:", jstr(net, "local"));
        out_kv(stdout, "port:", port);
    }
    if (json_is_true(json_object_get(net, "cluster"))) {
        out_kv(stdout, "cluster:", "yes (on every host)");
        if (type && strcmp(type, "vxlan") != 0) {
            _cleanup_free_ char *vni = jint_str(net, "vni");
            out_kv(stdout, "vni:", vni);
        }
    }
    out_kv(stdout, "dnsmasq pid:", pid);

    json_t *addresses = json_object_get(net, "addresses");
    if (json_is_array(addresses)) {
        _cleanup_free_ char *count = vo_asprintf("%zu (the cluster's)", json_array_size(addresses));
        out_kv(stdout, "addresses:", count);
        if (json_array_size(addresses)) {
            fputc('\n', stdout);
            static const char *const aheaders[] = { "IP", "VM", "MAC", "HOST" };
            OutTable *t = out_table_new(ELEMENTSOF(aheaders), aheaders);
            size_t i;
            json_t *a;
            json_array_foreach(addresses, i, a) {
                const char *cells[] = { jstr(a, "ip"), jstr(a, "name"), jstr(a, "mac"),
                                        jstr(a, "host") };
                out_table_add(t, cells);
            }
            out_table_print(t, stdout);
            out_table_free(t);
            fputc('\n', stdout);
        }
    }

    json_t *leases = json_object_get(net, "leases");
    if (json_array_size(leases) == 0) {
        out_kv(stdout, "leases:", json_is_array(leases) ? "none" : NULL);
        return;
    }
    _cleanup_free_ char *count = leases_count(net);
    out_kv(stdout, "leases:", count);
    fputc('\n', stdout);
    static const char *const headers[] = { "MAC", "IP", "HOSTNAME" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *lease;
    json_array_foreach(leases, i, lease) {
        const char *cells[] = { jstr(lease, "mac"), jstr(lease, "ip"), jstr(lease, "hostname") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
}

/* --vlan-id, --vni, --port: a whole number (the range is vireod's to check). */
static bool set_number(json_t *body, const char *key, const char *option, const char *s)
{
    uint64_t v;
    if (!s)
        return true;
    if (!cli_parse_uint(option, s, 0, INT64_MAX, &v))
        return false;
    json_object_set_new(body, key, json_integer((json_int_t)v));
    return true;
}

static int network_create(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *type = NULL, *subnet = NULL, *bridge = NULL, *uplink = NULL,
               *vlan_id = NULL, *vni = NULL, *local = NULL, *port = NULL, *project = NULL;
    bool no_dhcp = false;
    _cleanup_strv_ char **remotes = NULL;
    const CliOption opts[] = {
        { "--type", &type, NULL },       { "--subnet", &subnet, NULL },
        { "--no-dhcp", NULL, &no_dhcp }, { "--bridge", &bridge, NULL },
        { "--uplink", &uplink, NULL },   { "--vlan-id", &vlan_id, NULL },
        { "--vni", &vni, NULL },         { "--local", &local, NULL },
        { "--port", &port, NULL },       { "--project", &project, NULL },
        { NULL, NULL, NULL },
    };
    const CliListOption lists[] = { { "--remote", &remotes }, { NULL, NULL } };
    int exit_status;
    if (!cli_parse_args_lists(cmd, argc, argv, opts, lists, &name, 1, &exit_status))
        return exit_status;
    if (!type)
        return cli_usage_error("network create",
                               "'network create' needs --type nat|isolated|bridge|vlan|vxlan");
    if (!cli_parse_choice("--type", type, type_choices))
        return CLI_EXIT_USAGE;
    bool is_vlan = strcmp(type, "vlan") == 0, is_vxlan = strcmp(type, "vxlan") == 0;
    if (!is_vlan && (uplink || vlan_id))
        return cli_usage_error("network create", "--uplink and --vlan-id go with --type vlan");
    if (!is_vxlan && (vni || remotes || local || port))
        return cli_usage_error("network create",
                               "--vni, --remote, --local and --port go with --type vxlan");
    if (strcmp(type, "bridge") == 0 && !bridge)
        return cli_usage_error("network create",
                               "--type bridge needs --bridge BR (an existing host bridge)");
    if (is_vlan && (!uplink || !vlan_id))
        return cli_usage_error("network create", "--type vlan needs --uplink IFACE and --vlan-id N");
    if (is_vxlan && (!vni || !remotes))
        return cli_usage_error("network create",
                               "--type vxlan needs --vni N and at least one --remote ADDR");

    json_t *body = json_pack("{s:s, s:s}", "name", name, "type", type);
    if (subnet)
        json_object_set_new(body, "subnet", json_string(subnet));
    if (no_dhcp)
        json_object_set_new(body, "dhcp", json_false());
    if (bridge)
        json_object_set_new(body, "bridge", json_string(bridge));
    if (uplink)
        json_object_set_new(body, "uplink", json_string(uplink));
    if (remotes) {
        json_t *arr = json_array();
        for (char **r = remotes; *r; r++)
            json_array_append_new(arr, json_string(*r));
        json_object_set_new(body, "remotes", arr);
    }
    if (local)
        json_object_set_new(body, "local", json_string(local));
    if (project)
        json_object_set_new(body, "project", json_string(project));
    if (!set_number(body, "vlan_id", "--vlan-id", vlan_id) ||
        !set_number(body, "vni", "--vni", vni) || !set_number(body, "port", "--port", port)) {
        json_decref(body);
        return CLI_EXIT_USAGE;
    }

    json_t *net = NULL;
    int r = api_call("POST", "/v1/networks", body, &net);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(net, print_network);
}

static int network_list(const CliCommand *cmd, int argc, char **argv)
{
    const char *project = NULL;
    const CliOption opts[] = { { "--project", &project, NULL }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, NULL, &exit_status))
        return exit_status;
    _cleanup_free_ char *escaped = project ? api_escape(project) : NULL;
    _cleanup_free_ char *path = vo_asprintf("/v1/networks%s%s", project ? "?project=" : "",
                                            project ? escaped : "");
    json_t *doc = NULL;
    if (api_call("GET", path, NULL, &doc) < 0)
        return CLI_EXIT_FAIL;
    if (cli_globals.json) {
        out_json(stdout, doc);
        json_decref(doc);
        return CLI_EXIT_OK;
    }
    static const char *const headers[] = { "NAME",  "TYPE",   "SUBNET", "BRIDGE",
                                           "STATE", "LEASES", "PROJECT" };
    OutTable *t = out_table_new(ELEMENTSOF(headers), headers);
    size_t i;
    json_t *net;
    json_array_foreach(json_object_get(doc, "networks"), i, net) {
        _cleanup_free_ char *leases = leases_count(net);
        const char *cells[] = { jstr(net, "name"),   jstr(net, "type"),  jstr(net, "subnet"),
                                jstr(net, "bridge"), jstr(net, "state"), leases,
                                jstr(net, "project") };
        out_table_add(t, cells);
    }
    out_table_print(t, stdout);
    out_table_free(t);
    json_decref(doc);
    return CLI_EXIT_OK;
}

static int network_show(const CliCommand *cmd, int argc, char **argv)
{
    return api_show_command(cmd, argc, argv, "networks", print_network);
}

/* vireo network set NAME --project P|none: moves it (an admin's action). */
static int network_set(const CliCommand *cmd, int argc, char **argv)
{
    const char *name = NULL, *project = NULL;
    const CliOption opts[] = { { "--project", &project, NULL }, { NULL, NULL, NULL } };
    int exit_status;
    if (!cli_parse_args(cmd, argc, argv, opts, &name, &exit_status))
        return exit_status;
    if (!project)
        return cli_usage_error("network set", "'network set' needs --project P (none: no "
                                              "project)");
    json_t *body = json_pack("{s:o}", "project", strcmp(project, "none") ? json_string(project)
                                                                         : json_null());
    _cleanup_free_ char *path = api_path("networks", name, NULL);
    json_t *net = NULL;
    int r = api_call("PATCH", path, body, &net);
    json_decref(body);
    if (r < 0)
        return CLI_EXIT_FAIL;
    return api_print_doc(net, print_network);
}

static int network_delete(const CliCommand *cmd, int argc, char **argv)
{
    return api_delete_command(cmd, argc, argv, "networks");
}

static const CliCommand network_commands[] = {
    { "network", "create", "NAME",
      "--type nat|isolated|bridge|vlan|vxlan [--subnet CIDR] [--no-dhcp] [--bridge BR] "
      "[--uplink IFACE --vlan-id N] [--vni N --remote ADDR... [--local ADDR] [--port N]] "
      "[--project P]",
      "Create a network for VMs' NICs.",
      "Types:\n"
      "  nat                   a private subnet with DHCP, routed out through the host (NAT)\n"
      "  isolated              a private subnet with DHCP, not routed beyond the host\n"
      "  bridge                an existing host bridge (--bridge); the LAN serves addresses\n"
      "  vlan                  a VLAN (--vlan-id) on a host interface (--uplink)\n"
      "  vxlan                 a VXLAN (--vni) to other hosts (--remote, one per host)\n"
      "In a cluster, nat, isolated and bridge networks are the cluster's: they exist on\n"
      "every host (nat and isolated over a VXLAN segment whose VNI the cluster picks),\n"
      "with addresses kept by the cluster (see docs/cluster.md, Cluster networks).\n"
      "\nOptions:\n"
      "  --type TYPE           the kind of network (required)\n"
      "  --subnet CIDR         the VMs' subnet, e.g. 10.10.0.0/24 (nat and isolated: a\n"
      "                        free /24 of 10.100.0.0/16 when not given, and never one\n"
      "                        over another network's or the host's addresses or\n"
      "                        routes; vlan and vxlan: none, so no DHCP)\n"
      "  --no-dhcp             do not serve DHCP on the subnet\n"
      "  --bridge BR           the host bridge (bridge: required; others: the bridge\n"
      "                        vireod makes, named after the network by default)\n"
      "  --uplink IFACE        vlan: the host interface carrying the VLANs\n"
      "  --vlan-id N           vlan: the VLAN id\n"
      "  --vni N               vxlan: the VXLAN network identifier\n"
      "  --remote ADDR         vxlan: another host's IPv4 address; repeat for each host\n"
      "  --local ADDR          vxlan: this host's source address (default: the kernel's\n"
      "                        choice)\n"
      "  --port N              vxlan: the UDP port (default: 4789)\n"
      "  --project P           make it in project P: only P's VMs use it and only P's\n"
      "                        users see it (without: a shared network, seen and used\n"
      "                        by every project, changed by the cluster's admins)\n"
      "\nExamples:\n"
      "  vireo network create lab --type nat --subnet 10.10.0.0/24\n"
      "  vireo network create lan --type bridge --bridge br0\n"
      "  vireo network create v42 --type vlan --uplink eth1 --vlan-id 42\n"
      "  vireo network create ov1 --type vxlan --vni 1001 --remote 192.0.2.2 "
      "--remote 192.0.2.3 \\\n      --subnet 10.20.0.0/24\n",
      network_create },
    { "network", "list", NULL, "[--project P]", "List the networks.",
      "PROJECT: the project a network belongs to (none: shared by all projects);\n"
      "--project P lists only P's.\n",
      network_list },
    { "network", "set", "NAME", "--project P|none", "Move a network to a project.",
      "An action of the cluster's admins; refused while a VM has a NIC on it. none: the\n"
      "network belongs to no project (shared).\n",
      network_set },
    { "network", "show", "NAME", NULL, "Show one network and its DHCP leases.",
      "A cluster network also shows its VNI and the cluster's addresses (IPAM): every\n"
      "VM's address on it, on whichever host the VM runs; the leases are this host's.\n",
      network_show },
    { "network", "delete", "NAME", NULL, "Delete a network no VM uses.",
      "Refused while a VM has a NIC on the network (remove it with 'vireo vm nic remove');\n"
      "a cluster network: while a VM on any host has one. Every host takes it down.\n",
      network_delete },
};

const CliNoun cli_noun_network = { "network", "virtual networks", network_commands,
                                   ELEMENTSOF(network_commands) };
