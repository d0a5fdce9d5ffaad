/* test-drs.c: the DRS planner (cluster/drs.c): a VM's CPU demand from its
 * counters (used + waited, capped), the imbalance, the threshold
 * per level, the rounds before a move, the cooldown, which VMs and hosts a
 * move may use, groups, the ping-pong rule, and the choice of the best move
 * by improvement per cost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/drs.h"
#include "cluster/drs-vm-cpu.h"
#include "cluster/drs-vm-memory.h"

#define NOW 100000000LL /* any time well after 0 ("never moved") */

static VoDrsHost host(const char *name, double cpus, uint64_t mem)
{
    return (VoDrsHost){ .id = name, .name = name, .cpus = cpus, .memory_mib = mem,
                        .free_memory_mib = 1 << 20, .free_vcpus = 1000, .can_receive = true };
}

static VoDrsVm vm(const char *name, size_t h, double cpu, uint64_t mem_used)
{
    return (VoDrsVm){ .id = name, .name = name, .host = h, .cpu = cpu, .mem_used_mib = mem_used,
                      .memory_mib = mem_used ? mem_used : 512, .vcpus = 1, .movable = true };
}

static VoDrsInput input(const VoDrsHost *h, size_t nh, const VoDrsVm *v, size_t nv)
{
    return (VoDrsInput){ .n_hosts = nh, .hosts = h, .n_vms = nv, .vms = v };
}

/* Runs VO_DRS_ROUNDS rounds on a fresh state: the last one's result. */
static int rounds(const VoDrsInput *in, int level, VoDrsMove *mv, char **why)
{
    VoDrsState st = { 0 };
    VoDrsSettings s = { .mode = VO_DRS_AUTO, .level = level };
    int r = 0;
    for (int i = 0; i < VO_DRS_ROUNDS; i++) {
        free(*why);
        *why = NULL;
        r = vo_drs_round(&st, in, &s, NOW, mv, why);
    }
    vo_drs_state_clear(&st);
    return r;
}

static void modes_to_and_from_strings(void **state)
{
    (void)state;
    VoDrsMode m;
    const char *names[] = { "off", "manual", "auto" };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(vo_drs_mode_from_string(names[i], &m), 0);
        assert_int_equal(m, i);
        assert_string_equal(vo_drs_mode_to_string(m), names[i]);
    }
    assert_int_equal(vo_drs_mode_from_string("Auto", &m), -EINVAL);
    assert_int_equal(vo_drs_mode_from_string("", &m), -EINVAL);
    assert_int_equal(vo_drs_mode_from_string(NULL, &m), -EINVAL);
}

static void threshold_falls_with_the_level(void **state)
{
    (void)state;
    for (int l = VO_DRS_LEVEL_MIN; l < VO_DRS_LEVEL_MAX; l++)
        assert_true(vo_drs_threshold(l) > vo_drs_threshold(l + 1));
    assert_true(vo_drs_threshold(VO_DRS_LEVEL_MAX) > 0);
    assert_true(fabs(vo_drs_threshold(VO_DRS_LEVEL_DEFAULT) - 0.10) < 1e-12);
    /* Out of range: the nearest level. */
    assert_true(vo_drs_threshold(0) == vo_drs_threshold(VO_DRS_LEVEL_MIN));
    assert_true(vo_drs_threshold(9) == vo_drs_threshold(VO_DRS_LEVEL_MAX));
    double t = vo_drs_threshold(2);
    assert_true(fabs(vo_drs_min_gain(2) - t * t) < 1e-12);
}

static void imbalance_is_the_spread_of_host_load_points(void **state)
{
    (void)state;
    VoDrsHost h[] = { host("a", 4, 1000), host("b", 4, 1000) };
    /* Even: 0. */
    VoDrsVm v[] = { vm("x", 0, 1.0, 200), vm("y", 1, 1.0, 200) };
    VoDrsInput in = input(h, 2, v, 2);
    assert_true(fabs(vo_drs_imbalance(&in)) < 1e-12);

    /* CPU only: loads 0.5 and 0 -> standard deviation 0.25. */
    v[0] = vm("x", 0, 2.0, 0);
    v[1] = vm("y", 1, 0.0, 0);
    assert_true(fabs(vo_drs_imbalance(&in) - 0.25) < 1e-9);
    double c, m;
    vo_drs_host_load(&in, 0, &c, &m);
    assert_true(fabs(c - 0.5) < 1e-12 && m == 0);

    /* CPU and memory: sqrt(0.25^2 + 0.25^2). */
    v[0].mem_used_mib = 500;
    assert_true(fabs(vo_drs_imbalance(&in) - sqrt(0.125)) < 1e-9);

    /* Load is per CPU: 2 cores of 8 equal 1 core of 4. */
    VoDrsHost h2[] = { host("a", 8, 1000), host("b", 4, 1000) };
    VoDrsVm v2[] = { vm("x", 0, 2.0, 0), vm("y", 1, 1.0, 0) };
    VoDrsInput in2 = input(h2, 2, v2, 2);
    assert_true(fabs(vo_drs_imbalance(&in2)) < 1e-12);

    /* A host that can receive nothing and holds nothing does not count; one
     * that holds VMs does. */
    VoDrsHost h3[] = { host("a", 4, 1000), host("b", 4, 1000), host("c", 4, 1000) };
    h3[2].can_receive = false;
    VoDrsVm v3[] = { vm("x", 0, 2.0, 0), vm("y", 1, 0.0, 0) };
    VoDrsInput in3 = input(h3, 3, v3, 2);
    assert_true(fabs(vo_drs_imbalance(&in3) - 0.25) < 1e-9);
    v3[1].host = 2; /* b is now empty but can receive: counts; c holds y */
    double mean = 0.5 / 3;
    double want = sqrt(((0.5 - mean) * (0.5 - mean) + 2 * mean * mean) / 3);
    assert_true(fabs(vo_drs_imbalance(&in3) - want) < 1e-9);

    /* One host: nothing to balance. */
    VoDrsInput one = input(h, 1, v, 1);
    v[0].host = 0;
    assert_true(vo_drs_imbalance(&one) == 0);
}

static void a_move_needs_rounds_above_the_threshold(void **state)
{
    (void)state;
    VoDrsHost h[] = { host("a", 4, 100000), host("b", 4, 100000) };
    VoDrsVm v[] = { vm("x", 0, 1.0, 0), vm("y", 0, 1.0, 0), vm("z", 0, 1.0, 0) };
    VoDrsInput in = input(h, 2, v, 3);
    VoDrsState st = { 0 };
    VoDrsSettings s = { .mode = VO_DRS_AUTO, .level = VO_DRS_LEVEL_DEFAULT };
    VoDrsMove mv;
    char *why = NULL;
    for (int i = 1; i < VO_DRS_ROUNDS; i++) {
        assert_int_equal(vo_drs_round(&st, &in, &s, NOW, &mv, &why), 0);
        assert_int_equal(st.rounds_above, i);
        assert_non_null(strstr(why, "above threshold"));
        free(why);
    }
    assert_true(fabs(st.last_imbalance - 0.375) < 1e-9);
    assert_int_equal(vo_drs_round(&st, &in, &s, NOW, &mv, &why), 1);
    assert_null(why);
    assert_int_equal(mv.from, 0);
    assert_int_equal(mv.to, 1);
    assert_true(mv.imbalance_before > mv.imbalance_after);
    assert_true(fabs(mv.imbalance_after - 0.125) < 1e-9); /* 0.5 vs 0.25 */
    assert_true(mv.cost > 0 && mv.score > 0);
    /* The next move needs fresh rounds. */
    assert_int_equal(st.rounds_above, 0);
    assert_int_equal(vo_drs_round(&st, &in, &s, NOW, &mv, NULL), 0);

    /* A round at or below the threshold starts the count again. */
    st.rounds_above = VO_DRS_ROUNDS - 1;
    VoDrsVm even[] = { vm("x", 0, 1.0, 0), vm("y", 1, 1.0, 0) };
    VoDrsInput ein = input(h, 2, even, 2);
    assert_int_equal(vo_drs_round(&st, &ein, &s, NOW, &mv, &why), 0);
    assert_int_equal(st.rounds_above, 0);
    assert_non_null(strstr(why, "below threshold 0.100"));
    free(why);
    vo_drs_state_clear(&st);
}

/* Runs one round of in: its result, st updated. */
static int round_of(VoDrsState *st, const VoDrsHost *h, const VoDrsVm *v, size_t nv,
                    VoDrsMove *mv)
{
    VoDrsSettings s = { .mode = VO_DRS_AUTO, .level = VO_DRS_LEVEL_DEFAULT };
    VoDrsInput in = input(h, 3, v, nv);
    return vo_drs_round(st, &in, &s, NOW, mv, NULL);
}

/* The rounds counted are those of one imbalance: in each a move off the
 * same host helps. A spike on a and then one on b, or a stretch where no
 * move helps, is no count toward a move on b's (or the movable VMs') first
 * round. */
static void a_move_needs_rounds_of_the_same_imbalance(void **state)
{
    (void)state;
    VoDrsHost h[] = { host("a", 4, 100000), host("b", 4, 100000), host("c", 4, 100000) };
    VoDrsVm on_a[] = { vm("x", 0, 1.0, 0), vm("y", 0, 1.0, 0), vm("z", 1, 0.0, 0) };
    VoDrsVm on_b[] = { vm("x", 0, 0.0, 0), vm("y", 1, 1.0, 0), vm("z", 1, 1.0, 0) };
    VoDrsState st = { 0 };
    VoDrsMove mv;
    for (int i = 1; i < VO_DRS_ROUNDS; i++)
        assert_int_equal(round_of(&st, h, on_a, 3, &mv), 0);
    assert_int_equal(st.rounds_above, VO_DRS_ROUNDS - 1);
    /* b's spike: its first round, not a's third. */
    assert_int_equal(round_of(&st, h, on_b, 3, &mv), 0);
    assert_int_equal(st.rounds_above, 1);
    assert_string_equal(st.from, "b");
    for (int i = 2; i < VO_DRS_ROUNDS; i++)
        assert_int_equal(round_of(&st, h, on_b, 3, &mv), 0);
    assert_int_equal(round_of(&st, h, on_b, 3, &mv), 1);
    assert_int_equal(mv.from, 1);
    assert_int_equal(st.rounds_above, 0);

    /* Above the threshold with nothing movable for long: counted as rounds
     * of no move (at most VO_DRS_ROUNDS), not toward the move that comes
     * once the VMs can move. */
    on_a[0].movable = on_a[1].movable = false;
    for (int i = 0; i < 2 * VO_DRS_ROUNDS; i++)
        assert_int_equal(round_of(&st, h, on_a, 3, &mv), 0);
    assert_int_equal(st.rounds_above, VO_DRS_ROUNDS);
    assert_null(st.from);
    on_a[0].movable = on_a[1].movable = true;
    for (int i = 1; i < VO_DRS_ROUNDS; i++) {
        assert_int_equal(round_of(&st, h, on_a, 3, &mv), 0);
        assert_int_equal(st.rounds_above, i);
    }
    assert_int_equal(round_of(&st, h, on_a, 3, &mv), 1);
    assert_int_equal(mv.from, 0);

    /* a stays loaded while b's load grows past it: a move off a still
     * helps, so a's count goes on (in a large cluster the best of several
     * loaded hosts changes from round to round) and a's move is the one. */
    VoDrsVm both[] = { vm("x", 0, 1.0, 0), vm("y", 0, 1.0, 0), vm("z", 1, 1.2, 0),
                       vm("w", 1, 1.2, 0) };
    assert_int_equal(round_of(&st, h, on_a, 3, &mv), 0);
    for (int i = 2; i < VO_DRS_ROUNDS; i++) {
        assert_int_equal(round_of(&st, h, both, 4, &mv), 0);
        assert_int_equal(st.rounds_above, i);
    }
    assert_int_equal(round_of(&st, h, both, 4, &mv), 1);
    assert_int_equal(mv.from, 0);
    vo_drs_state_clear(&st);
    vo_drs_state_clear(NULL);
}

static void the_threshold_depends_on_the_level(void **state)
{
    (void)state;
    /* Loads 0.3625 and 0.15 of 4 CPUs: imbalance 0.10625. */
    VoDrsHost h[] = { host("a", 4, 100000), host("b", 4, 100000) };
    VoDrsVm v[] = { vm("x", 0, 0.6, 0), vm("y", 0, 0.85, 0), vm("z", 1, 0.6, 0) };
    VoDrsInput in = input(h, 2, v, 3);
    double imb = vo_drs_imbalance(&in);
    assert_true(imb > vo_drs_threshold(3) && imb < vo_drs_threshold(2));
    VoDrsMove mv;
    char *why = NULL;
    assert_int_equal(rounds(&in, 1, &mv, &why), 0);
    assert_non_null(strstr(why, "below threshold"));
    assert_int_equal(rounds(&in, 2, &mv, &why), 0);
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_int_equal(mv.vm, 0); /* y would only swap the hosts' loads */
    assert_int_equal(rounds(&in, 5, &mv, &why), 1);
    free(why);
}

static void mode_off_recommends_nothing(void **state)
{
    (void)state;
    VoDrsHost h[] = { host("a", 4, 100000), host("b", 4, 100000) };
    VoDrsVm v[] = { vm("x", 0, 2.0, 0), vm("y", 0, 2.0, 0) };
    VoDrsInput in = input(h, 2, v, 2);
    VoDrsState st = { 0 };
    VoDrsSettings s = { .mode = VO_DRS_OFF, .level = 5 };
    VoDrsMove mv;
    char *why = NULL;
    for (int i = 0; i < 2 * VO_DRS_ROUNDS; i++) {
        assert_int_equal(vo_drs_round(&st, &in, &s, NOW, &mv, &why), 0);
        assert_non_null(strstr(why, "DRS is off"));
        free(why);
        assert_int_equal(st.rounds_above, 0);
    }
    assert_true(st.last_imbalance > 0.4); /* still measured */
    /* Manual recommends like auto (what to do with it is the caller's). */
    s.mode = VO_DRS_MANUAL;
    int r = 0;
    for (int i = 0; i < VO_DRS_ROUNDS; i++)
        r = vo_drs_round(&st, &in, &s, NOW, &mv, NULL);
    assert_int_equal(r, 1);
    vo_drs_state_clear(&st);
}

static void cooldown_and_not_movable_are_left_alone(void **state)
{
    (void)state;
    VoDrsHost h[] = { host("a", 4, 100000), host("b", 4, 100000) };
    /* x is the better move (it evens the hosts out exactly); y the other. */
    VoDrsVm v[] = { vm("x", 0, 1.0, 1000), vm("y", 0, 0.6, 1000), vm("z", 0, 1.0, 1000) };
    VoDrsInput in = input(h, 2, v, 3);
    VoDrsMove mv;
    char *why = NULL;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_string_equal(v[mv.vm].name, "x");

    v[0].last_moved_ms = NOW - VO_DRS_COOLDOWN_MS + 1; /* still cooling down */
    v[2].last_moved_ms = NOW - 1;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_string_equal(v[mv.vm].name, "y");
    v[1].movable = false;
    assert_int_equal(rounds(&in, 3, &mv, &why), 0);
    assert_non_null(strstr(why, "no move improves it"));
    assert_non_null(strstr(why, "2 in cooldown, 1 not movable"));
    /* The cooldown ends. */
    v[0].last_moved_ms = NOW - VO_DRS_COOLDOWN_MS;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_string_equal(v[mv.vm].name, "x");
    free(why);
}

static void a_failed_move_backs_off_until_retry_after(void **state)
{
    (void)state;
    VoDrsHost h[] = { host("a", 4, 100000), host("b", 4, 100000) };
    VoDrsVm v[] = { vm("x", 0, 1.0, 1000), vm("y", 0, 0.6, 1000), vm("z", 0, 1.0, 1000) };
    VoDrsInput in = input(h, 2, v, 3);
    VoDrsMove mv;
    char *why = NULL;
    /* x's move failed: it waits out its backoff, z (as loaded) goes instead. */
    v[0].retry_after_ms = NOW + 1;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_string_equal(v[mv.vm].name, "z");
    v[2].retry_after_ms = NOW + 1;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_string_equal(v[mv.vm].name, "y");
    v[1].retry_after_ms = NOW + 1;
    assert_int_equal(rounds(&in, 3, &mv, &why), 0);
    assert_non_null(strstr(why, "3 in cooldown"));
    /* The backoff is over. */
    v[0].retry_after_ms = NOW;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_string_equal(v[mv.vm].name, "x");
    free(why);
    /* 1 min, doubling, at most 30 min. */
    assert_int_equal(vo_drs_backoff_ms(1), 60000);
    assert_int_equal(vo_drs_backoff_ms(2), 120000);
    assert_int_equal(vo_drs_backoff_ms(5), 16 * 60000);
    assert_int_equal(vo_drs_backoff_ms(6), 30 * 60000);
    assert_int_equal(vo_drs_backoff_ms(1000), 30 * 60000);
}

static void targets_must_receive_and_have_room(void **state)
{
    (void)state;
    VoDrsHost h[] = { host("a", 4, 100000), host("b", 4, 100000), host("c", 4, 100000) };
    VoDrsVm v[] = { vm("x", 0, 1.0, 0), vm("y", 0, 1.0, 0), vm("z", 0, 1.0, 0),
                    vm("w", 1, 0.5, 0) };
    v[0].memory_mib = v[1].memory_mib = v[2].memory_mib = 4096;
    v[0].vcpus = v[1].vcpus = v[2].vcpus = 2;
    VoDrsInput in = input(h, 3, v, 4);
    VoDrsMove mv;
    char *why = NULL;
    /* c is empty: the best target. */
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_int_equal(mv.to, 2);
    h[2].can_receive = false;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_int_equal(mv.to, 1);
    h[1].free_memory_mib = 4095; /* lacks memory */
    assert_int_equal(rounds(&in, 3, &mv, &why), 0);
    assert_non_null(strstr(why, "3 with no host that can take them"));
    h[1].free_memory_mib = 4096;
    h[1].free_vcpus = 1.5; /* lacks vCPUs */
    assert_int_equal(rounds(&in, 3, &mv, &why), 0);
    h[1].free_vcpus = 2;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_int_equal(mv.to, 1);
    free(why);
}

/* A UEFI VM goes only to a host whose record lists its firmware (OVMF
 * installed), as placement decides (vo_place_firmware_ok): the move is
 * never planned to a host that would refuse it later. */
static void targets_must_boot_the_vms_firmware(void **state)
{
    (void)state;
    char *bios_only[] = { "bios", NULL };
    char *with_uefi[] = { "bios", "uefi", NULL };
    VoDrsHost h[] = { host("a", 4, 100000), host("b", 4, 100000), host("c", 4, 100000) };
    VoDrsVm v[] = { vm("x", 0, 1.0, 0), vm("y", 0, 1.0, 0), vm("z", 0, 1.0, 0),
                    vm("w", 1, 0.5, 0) };
    for (int i = 0; i < 3; i++)
        v[i].firmware = vo_place_firmware_needed(VO_FIRMWARE_UEFI, false);
    h[1].firmware = with_uefi;
    h[2].firmware = bios_only; /* c, empty, would be the best target */
    VoDrsInput in = input(h, 3, v, 4);
    VoDrsMove mv;
    char *why = NULL;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_int_equal(mv.to, 1);
    /* No host with OVMF to go to: no move, and the reason counts them. */
    h[1].firmware = bios_only;
    assert_int_equal(rounds(&in, 3, &mv, &why), 0);
    assert_non_null(strstr(why, "3 with no host that can take them"));
    /* A host that does not say (an older vireod) is not trusted with one. */
    h[2].firmware = NULL;
    assert_int_equal(rounds(&in, 3, &mv, &why), 0);
    /* Secure boot needs its own entry. */
    char *secure[] = { "bios", "uefi", "uefi-secure-boot", NULL };
    h[1].firmware = with_uefi;
    h[2].firmware = secure;
    for (int i = 0; i < 3; i++)
        v[i].firmware = vo_place_firmware_needed(VO_FIRMWARE_UEFI, true);
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_int_equal(mv.to, 2);
    /* BIOS VMs go anywhere. */
    for (int i = 0; i < 3; i++)
        v[i].firmware = vo_place_firmware_needed(VO_FIRMWARE_BIOS, false);
    h[2].firmware = NULL;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_int_equal(mv.to, 2);
    free(why);
}

/* The list a host or VM carries that targets are filtered on: its
 * networks or its pools. */
static char *const **networks_or_pools(char *const **networks, char *const **pools,
                                        bool by_pools)
{
    return by_pools ? pools : networks;
}

/* Three VMs of host a that each need both of `needed` go only to a host
 * whose record has each (c, empty, would be the best target); none moves
 * when no host has both; a host that says nothing (an older vireod) is not
 * filtered on. */
static void targets_must_have_what_the_vms_need(bool by_pools, char **both, char **one,
                                               char **needed)
{
    char *none[] = { NULL };
    VoDrsHost h[] = { host("a", 4, 100000), host("b", 4, 100000), host("c", 4, 100000) };
    VoDrsVm v[] = { vm("x", 0, 1.0, 0), vm("y", 0, 1.0, 0), vm("z", 0, 1.0, 0),
                    vm("w", 1, 0.5, 0) };
    for (int i = 0; i < 3; i++)
        *networks_or_pools(&v[i].networks, &v[i].pools, by_pools) = needed;
    *networks_or_pools(&h[1].networks, &h[1].pools, by_pools) = both;
    *networks_or_pools(&h[2].networks, &h[2].pools, by_pools) = one;
    VoDrsInput in = input(h, 3, v, 4);
    VoDrsMove mv;
    char *why = NULL;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_int_equal(mv.to, 1);
    *networks_or_pools(&h[1].networks, &h[1].pools, by_pools) = by_pools ? one : none;
    assert_int_equal(rounds(&in, 3, &mv, &why), 0);
    assert_non_null(strstr(why, "3 with no host that can take them"));
    *networks_or_pools(&h[2].networks, &h[2].pools, by_pools) = NULL; /* does not say */
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_int_equal(mv.to, 2);
    free(why);
}

/* NICs on networks: a host must have each (vo_place_networks_ok, as
 * placement). */
static void targets_must_have_the_vms_networks(void **state)
{
    (void)state;
    char *both[] = { "dmz", "lan", NULL };
    char *lan_only[] = { "lan", NULL };
    char *needed[] = { "dmz", "lan", NULL };
    targets_must_have_what_the_vms_need(false, both, lan_only, needed);
}

/* A disk in a shared pool: a host must reach it (vo_place_pools_ok, the
 * pools a migration's target asks for): before, DRS proposed a host
 * without the pool and the migration's check refused it. */
static void targets_must_reach_the_vms_pools(void **state)
{
    (void)state;
    char *all[] = { "default", "nfs", NULL };
    char *own_only[] = { "default", NULL };
    char *needed[] = { "default", "nfs", NULL };
    targets_must_have_what_the_vms_need(true, all, own_only, needed);
}

/* A target's own network of the VM's NIC's name that belongs to another
 * project is not the VM's (the migration check refuses the move): DRS does
 * not propose that target, but one whose network is the VM's project's or
 * of none (cluster/place-network-projects.h). */
static void targets_networks_of_another_project_are_left_out(void **state)
{
    (void)state;
    char *lan[] = { "lan", NULL };
    VoDrsHost h[] = { host("a", 4, 100000), host("b", 4, 100000), host("c", 4, 100000) };
    VoDrsVm v[] = { vm("x", 0, 1.0, 0), vm("y", 0, 1.0, 0), vm("z", 0, 1.0, 0),
                    vm("w", 1, 0.5, 0) };
    for (int i = 0; i < 3; i++) {
        v[i].networks = lan;
        v[i].project = "pa";
    }
    for (int i = 0; i < 3; i++)
        h[i].networks = lan;
    /* c, empty, would be the best target; its lan is pb's. */
    json_t *owners = json_pack("{s:{s:{s:s}}, s:{s:{s:s}}}", "a/lan", "doc", "project", "pa",
                               "c/lan", "doc", "project", "pb");
    VoDrsInput in = input(h, 3, v, 4);
    VoDrsMove mv;
    char *why = NULL;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_int_equal(mv.to, 2); /* without the projects known */
    in.network_owners = owners;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_int_equal(mv.to, 1); /* b's lan is of no project */
    json_object_set_new(owners, "b/lan", json_pack("{s:{s:s}}", "doc", "project", "pb"));
    assert_int_equal(rounds(&in, 3, &mv, &why), 0);
    assert_non_null(strstr(why, "3 with no host that can take them"));
    /* VMs of no project are "default"'s: pb's networks are not theirs either. */
    for (int i = 0; i < 3; i++)
        v[i].project = NULL;
    assert_int_equal(rounds(&in, 3, &mv, &why), 0);
    json_object_set_new(owners, "c/lan", json_pack("{s:{s:s}}", "doc", "project", "default"));
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_int_equal(mv.to, 2);
    free(why);
    json_decref(owners);
}

static void groups_hold(void **state)
{
    (void)state;
    VoDrsHost h[] = { host("a", 4, 100000), host("b", 4, 100000), host("c", 4, 100000) };
    VoDrsVm v[] = { vm("x", 0, 1.0, 0), vm("y", 0, 1.0, 0), vm("z", 0, 1.0, 0),
                    vm("w", 2, 0.2, 0) };
    VoDrsInput in = input(h, 3, v, 4);
    VoDrsMove mv;
    char *why = NULL;

    /* A together group is not moved apart, whatever else is in it. */
    for (int i = 0; i < 3; i++) {
        v[i].group = "db";
        v[i].group_policy = VO_GROUP_TOGETHER;
    }
    assert_int_equal(rounds(&in, 3, &mv, &why), 0);
    assert_non_null(strstr(why, "3 in a together group"));
    /* A together group of one is the whole group: it may move; x stays
     * with w. */
    v[1].group = "web";
    v[2].group = NULL;
    v[3].group = "db";
    v[3].group_policy = VO_GROUP_TOGETHER;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_true(mv.vm == 1 || mv.vm == 2);

    /* Spread: never two of the group on one host. w (on c) and x, y are
     * "s"; z is free: only z may go to c, x and y may go to b. */
    for (int i = 0; i < 4; i++) {
        v[i].group = i == 2 ? NULL : "s";
        v[i].group_policy = VO_GROUP_SPREAD;
    }
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_false(mv.to == 2 && v[mv.vm].group);
    /* b full: only z remains, and only to c. */
    h[1].can_receive = false;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_string_equal(v[mv.vm].name, "z");
    assert_int_equal(mv.to, 2);
    /* z joins the group: nothing can move. */
    v[2].group = "s";
    assert_int_equal(rounds(&in, 3, &mv, &why), 0);
    /* A member of another group does not count against s. */
    v[3].group = "t";
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_int_equal(mv.to, 2);
    free(why);
}

static void no_move_overshoots_the_source(void **state)
{
    (void)state;
    /* Hosts of 1 CPU and 1000 MiB, mean load point (0.4, 0.4): a (0.8, 0.4),
     * b (0.3, 0.78), c (0.1, 0.02). Moving x (0.35 CPU, no memory) from a to
     * b lowers the imbalance but leaves b farther from the mean than a was
     * ((0.25, 0.38) vs (0.4, 0)): a ping-pong move. c holds a VM but takes
     * none. */
    VoDrsHost h[] = { host("a", 1, 1000), host("b", 1, 1000), host("c", 1, 1000) };
    h[2].can_receive = false;
    VoDrsVm v[] = { vm("x", 0, 0.35, 0), vm("a2", 0, 0.45, 400), vm("b1", 1, 0.3, 780),
                    vm("c1", 2, 0.1, 20) };
    VoDrsInput in = input(h, 3, v, 4);
    double before = vo_drs_imbalance(&in);
    v[0].host = 1;
    double after = vo_drs_imbalance(&in);
    v[0].host = 0;
    double gain = 3 * (before * before - after * after); /* summed squared deviation */
    assert_true(gain > vo_drs_min_gain(5));
    VoDrsMove mv;
    char *why = NULL;
    assert_int_equal(rounds(&in, 5, &mv, &why), 0);
    assert_non_null(strstr(why, "no move improves it"));

    /* With a smaller x (0.15 CPU) b ends at (0.05, 0.38), nearer than a was:
     * the move is made. */
    v[0].cpu = 0.15;
    v[1].cpu = 0.65;
    assert_int_equal(rounds(&in, 5, &mv, &why), 1);
    assert_string_equal(v[mv.vm].name, "x");
    assert_int_equal(mv.to, 1);
    free(why);
}

static void too_small_a_gain_is_no_move(void **state)
{
    (void)state;
    /* a at 0.5, b at 0.2: above the threshold, but the only movable VM is
     * nearly idle: moving it gains less than vo_drs_min_gain. */
    VoDrsHost h[] = { host("a", 1, 100000), host("b", 1, 100000) };
    VoDrsVm v[] = { vm("big", 0, 0.49, 0), vm("idle", 0, 0.01, 0), vm("other", 1, 0.2, 0) };
    v[0].movable = false;
    VoDrsInput in = input(h, 2, v, 3);
    VoDrsMove mv;
    char *why = NULL;
    assert_int_equal(rounds(&in, 3, &mv, &why), 0);
    assert_non_null(strstr(why, "no move improves it"));
    v[1].cpu = 0.1; /* moving 0.1 of the 0.3 gap is worth it */
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_string_equal(v[mv.vm].name, "idle");
    free(why);
}

static void best_move_by_improvement_per_cost(void **state)
{
    (void)state;
    VoDrsHost h[] = { host("a", 4, 1 << 20), host("b", 4, 1 << 20) };
    /* Two equal loads: the one with less memory to copy costs less. */
    VoDrsVm v[] = { vm("heavy", 0, 1.0, 16384), vm("light", 0, 1.0, 1024),
                    vm("rest", 0, 1.0, 0) };
    v[2].movable = false;
    VoDrsInput in = input(h, 2, v, 3);
    VoDrsMove mv;
    char *why = NULL;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_string_equal(v[mv.vm].name, "light");
    assert_true(fabs(mv.cost - vo_drs_move_cost(&v[1])) < 1e-12);
    assert_true(fabs(mv.score - (mv.imbalance_before - mv.imbalance_after) / mv.cost) < 1e-12);

    /* A dirty rate makes the copy longer: equal memory, the calmer one. */
    v[0].mem_used_mib = 1024;
    v[0].memory_mib = 1024;
    v[1].dirty_mib_s = 500;
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_string_equal(v[mv.vm].name, "heavy");

    /* Costs: overhead + memory / bandwidth, inflated by the dirty rate (at most 5x). */
    VoDrsVm c = vm("c", 0, 0, 2000);
    assert_true(fabs(vo_drs_move_cost(&c) - (VO_DRS_MOVE_OVERHEAD_S + 2.0)) < 1e-9);
    c.dirty_mib_s = VO_DRS_BANDWIDTH_MIB_S / 2;
    assert_true(fabs(vo_drs_move_cost(&c) - (VO_DRS_MOVE_OVERHEAD_S + 4.0)) < 1e-9);
    c.dirty_mib_s = VO_DRS_BANDWIDTH_MIB_S * 2;
    assert_true(fabs(vo_drs_move_cost(&c) - (VO_DRS_MOVE_OVERHEAD_S + 10.0)) < 1e-9);
    c.memory_mib = 1000; /* RSS above the configured size: the configured size */
    assert_true(fabs(vo_drs_move_cost(&c) - (VO_DRS_MOVE_OVERHEAD_S + 5.0)) < 1e-9);

    /* A bigger improvement can beat a cheaper one: moving 1.5 of a 2.5-core
     * gap, at twice the cost of moving 0.5 of it. */
    VoDrsVm w[] = { vm("half", 0, 0.5, 1000), vm("big", 0, 1.5, 3000), vm("base", 0, 0.5, 0) };
    w[2].movable = false;
    VoDrsHost hw[] = { host("a", 4, 1 << 20), host("b", 4, 1 << 20) };
    VoDrsInput win = input(hw, 2, w, 3);
    assert_int_equal(rounds(&win, 3, &mv, &why), 1);
    assert_string_equal(w[mv.vm].name, "big");
    free(why);
}

/* The memory a VM weighs is its measure (the guest's use, else RSS, else
 * its size: daemon/drs.c), not its configured size: with sizes the big VM
 * evens the hosts out; measured, it uses little and the other is moved,
 * at the cost of what it uses. */
static void memory_in_use_not_size_decides(void **state)
{
    (void)state;
    VoDrsHost h[] = { host("a", 4, 16384), host("b", 4, 16384) };
    VoDrsVm v[] = { vm("big", 0, 0, 8192), vm("busy", 0, 0, 4096), vm("base", 0, 0, 4096) };
    v[2].movable = false;
    VoDrsInput in = input(h, 2, v, 3);
    VoDrsMove mv;
    char *why = NULL;
    /* Measured as their sizes: moving "big" halves host a's memory. */
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_string_equal(v[mv.vm].name, "big");
    assert_true(fabs(mv.imbalance_after) < 1e-9);
    /* The guest of "big" uses 1 GiB of its 8: "busy" now evens them out
     * more per second of copying. */
    v[0].mem_used_mib = 1024;
    assert_true(v[0].memory_mib == 8192);
    assert_int_equal(rounds(&in, 3, &mv, &why), 1);
    assert_string_equal(v[mv.vm].name, "busy");
    assert_true(fabs(mv.cost - (VO_DRS_MOVE_OVERHEAD_S + 4096 / VO_DRS_BANDWIDTH_MIB_S)) < 1e-9);
    double cpu = 0, mem = 0;
    vo_drs_host_load(&in, 0, &cpu, &mem);
    assert_true(fabs(mem - 9216.0 / 16384) < 1e-12); /* use, not 16384 configured */
    /* The cost of moving "big" is what its guest uses while its host
     * says nothing of its RSS; its RSS when that is more: its page cache
     * is copied too (at most its configured size). */
    assert_true(fabs(vo_drs_move_cost(&v[0]) - (VO_DRS_MOVE_OVERHEAD_S + 1.024)) < 1e-9);
    v[0].rss_mib = 6000;
    assert_true(fabs(vo_drs_move_cost(&v[0]) - (VO_DRS_MOVE_OVERHEAD_S + 6.0)) < 1e-9);
    v[0].rss_mib = 9000;
    assert_true(fabs(vo_drs_move_cost(&v[0]) - (VO_DRS_MOVE_OVERHEAD_S + 8.192)) < 1e-9);
    v[0].rss_mib = 512; /* ballooned below its use: its use */
    assert_true(fabs(vo_drs_move_cost(&v[0]) - (VO_DRS_MOVE_OVERHEAD_S + 1.024)) < 1e-9);
    free(why);
}

/* The manager's measure of a VM (cluster/drs-vm-memory.h): its host's,
 * with where it came from; an older host's without a source is RSS; no
 * sample (none yet, or its host says nothing of it) or 0: the configured
 * size, which it once weighed as 0. */
static void memory_measure_falls_back_to_the_size(void **state)
{
    (void)state;
    json_t *spec = json_pack("{s:i}", "memory_mib", 4096);
    json_t *guest = json_pack("{s:i, s:s}", "mem_mib", 300, "mem_source", "guest");
    json_t *older = json_pack("{s:f}", "mem_mib", 512.0);
    json_t *none = json_pack("{s:i}", "mem_mib", 0);
    const char *source = NULL;
    assert_int_equal(vo_drs_vm_memory_measure(guest, spec, &source), 300);
    assert_string_equal(source, "guest");
    assert_int_equal(vo_drs_vm_memory_measure(older, spec, &source), 512);
    assert_string_equal(source, "rss");
    assert_int_equal(vo_drs_vm_memory_measure(NULL, spec, &source), 4096);
    assert_string_equal(source, "configured");
    assert_int_equal(vo_drs_vm_memory_measure(none, spec, &source), 4096);
    assert_string_equal(source, "configured");
    assert_int_equal(vo_drs_vm_memory_measure(NULL, NULL, &source), 0);
    assert_string_equal(source, "configured");
    json_decref(spec);
    json_decref(guest);
    json_decref(older);
    json_decref(none);
}

static void bad_input_is_refused(void **state)
{
    (void)state;
    VoDrsHost h[] = { host("a", 4, 1000), host("b", 4, 1000) };
    VoDrsVm v[] = { vm("x", 0, 1.0, 0) };
    VoDrsInput in = input(h, 2, v, 1);
    VoDrsState st = { 0 };
    VoDrsSettings s = { .mode = VO_DRS_AUTO, .level = 3 };
    VoDrsMove mv;
    char *why = NULL;

    v[0].host = 2;
    assert_int_equal(vo_drs_round(&st, &in, &s, NOW, &mv, &why), -EINVAL);
    assert_non_null(strstr(why, "VM x: host index 2 out of range"));
    free(why);
    assert_true(vo_drs_imbalance(&in) == 0);
    v[0].host = 0;
    v[0].cpu = NAN;
    assert_int_equal(vo_drs_round(&st, &in, &s, NOW, &mv, &why), -EINVAL);
    assert_non_null(strstr(why, "VM x"));
    free(why);
    v[0].cpu = 1;
    h[1].cpus = 0;
    assert_int_equal(vo_drs_round(&st, &in, &s, NOW, &mv, &why), -EINVAL);
    assert_non_null(strstr(why, "host b"));
    free(why);
    h[1].cpus = 4;
    s.level = 6;
    assert_int_equal(vo_drs_round(&st, &in, &s, NOW, &mv, &why), -EINVAL);
    assert_non_null(strstr(why, "level"));
    free(why);
    s.level = 3;
    assert_int_equal(vo_drs_round(&st, NULL, &s, NOW, &mv, NULL), -EINVAL);
    assert_int_equal(vo_drs_round(&st, &in, &s, NOW, &mv, &why), 0);
    free(why);

    /* No hosts, no VMs: nothing to do. */
    VoDrsInput empty = { 0 };
    assert_int_equal(vo_drs_round(&st, &empty, &s, NOW, &mv, &why), 0);
    assert_non_null(strstr(why, "fewer than 2 hosts"));
    free(why);
    vo_drs_state_clear(&st);
}

/* The manager's CPU measure of a VM (cluster/drs-vm-cpu.h): its host's
 * sample of its demand, else of its use (an older host's); no sample on
 * its host yet (null: its first there; or no entry): what it weighed
 * before, else 0. */
static void cpu_measure_carries_a_vm_not_sampled_yet(void **state)
{
    (void)state;
    json_t *known = json_pack("{s:f}", "a", 0.4);
    json_t *sampled = json_pack("{s:f, s:f}", "cpu", 0.25, "cpu_demand", 1.0);
    json_t *older = json_pack("{s:f}", "cpu", 0.3);
    json_t *first = json_pack("{s:n, s:n, s:i}", "cpu", "cpu_demand", "mem_mib", 20);
    bool carried = true;
    assert_true(vo_drs_vm_cpu_measure(sampled, known, "a", &carried) == 1.0);
    assert_false(carried);
    assert_true(vo_drs_vm_cpu_measure(older, known, "a", &carried) == 0.3);
    assert_false(carried);
    assert_true(vo_drs_vm_cpu_measure(first, known, "a", &carried) == 0.4);
    assert_true(carried);
    assert_true(vo_drs_vm_cpu_measure(NULL, known, "a", &carried) == 0.4);
    assert_true(carried);
    assert_true(vo_drs_vm_cpu_measure(first, known, "b", &carried) == 0);
    assert_false(carried);
    assert_true(vo_drs_vm_cpu_measure(first, NULL, "a", NULL) == 0);
    json_decref(known);
    json_decref(sampled);
    json_decref(older);
    json_decref(first);
}

/* The round right after a move: the moved VM's first sample on its new
 * host has no CPU figure (its QEMU is new there). Weighed at 0, the target
 * looked lighter than it is (hosts 0.2 : 0.2 : 0, imbalance 0.094, above
 * level 5's 0.05) and the round counted toward a second move; carried at
 * what the VM weighed before the move, the hosts are even. Inputs are made
 * as the manager makes them: each VM's measure from its host's vm_load
 * entry and what it weighed in the last round (src/daemon/drs.c). */
static void a_moved_vms_first_sample_on_its_new_host_is_not_idle(void **state)
{
    (void)state;
    VoDrsHost h[] = { host("h1", 1, 100000), host("h2", 1, 100000), host("h3", 1, 100000) };
    const char *names[] = { "busy1", "busy2", "busy3" };
    size_t on[] = { 0, 0, 1 };
    json_t *busy = json_pack("{s:f, s:f, s:i}", "cpu", 0.1, "cpu_demand", 0.2, "mem_mib", 20);
    json_t *first = json_pack("{s:n, s:n, s:i}", "cpu", "cpu_demand", "mem_mib", 20);
    json_t *entry[] = { busy, busy, busy };
    json_t *known = json_object();
    VoDrsState st = { 0 };
    VoDrsSettings s = { .mode = VO_DRS_AUTO, .level = 5 };
    VoDrsMove mv;
    int got = 0;
    for (int round = 0; round < VO_DRS_ROUNDS + 3; round++) {
        VoDrsVm v[3];
        json_t *next = json_object();
        for (size_t i = 0; i < 3; i++) {
            v[i] = vm(names[i], on[i], vo_drs_vm_cpu_measure(entry[i], known, names[i], NULL),
                      20);
            json_object_set_new(next, names[i], json_real(v[i].cpu));
        }
        json_decref(known);
        known = next;
        VoDrsInput in = input(h, 3, v, 3);
        char *why = NULL;
        got = vo_drs_round(&st, &in, &s, NOW, &mv, &why);
        if (round < VO_DRS_ROUNDS) { /* 0.4 : 0.2 : 0 until a VM of h1 goes to h3 */
            if (got == 1) {
                assert_int_equal(round, VO_DRS_ROUNDS - 1);
                assert_int_equal(mv.from, 0);
                assert_int_equal(mv.to, 2);
                on[mv.vm] = mv.to;
                entry[mv.vm] = first; /* its first sample on h3, for the rounds after */
            }
        } else { /* even: nothing counts toward another move */
            assert_int_equal(got, 0);
            assert_true(vo_drs_imbalance(&in) < 1e-9);
            assert_int_equal(st.rounds_above, 0);
            assert_non_null(strstr(why, "below threshold"));
        }
        free(why);
    }
    assert_true(on[0] == 2 || on[1] == 2);
    json_decref(known);
    json_decref(busy);
    json_decref(first);
    vo_drs_state_clear(&st);
}

/* Demand = (used + waited) / wall, capped at the vCPUs and the CPU limit,
 * never below use; a counter that went back (a new process) gives 0. */
static void cpu_demand_from_counters(void **state)
{
    double used, demand;
    const VoDrsCpuCounters t0 = { .cpu_ns = 5000000000ULL, .wait_ns = 7000000000ULL };
    /* 10 s: 1 s used, 4 s waited: 0.1 used, 0.5 wanted. */
    VoDrsCpuCounters t1 = { t0.cpu_ns + 1000000000ULL, t0.wait_ns + 4000000000ULL };
    assert_true(vo_drs_cpu_sample(&t0, &t1, 10000, 2, 0, &used, &demand));
    assert_true(fabs(used - 0.1) < 1e-9 && fabs(demand - 0.5) < 1e-9);
    /* Capped by its CPU limit (its own quota's throttling counts as
     * waiting), then by its vCPUs. */
    vo_drs_cpu_sample(&t0, &t1, 10000, 2, 0.3, &used, &demand);
    assert_true(fabs(used - 0.1) < 1e-9 && fabs(demand - 0.3) < 1e-9);
    t1.wait_ns = t0.wait_ns + 40000000000ULL; /* 4 cores waited */
    vo_drs_cpu_sample(&t0, &t1, 10000, 2, 0, &used, &demand);
    assert_true(fabs(demand - 2.0) < 1e-9);
    vo_drs_cpu_sample(&t0, &t1, 10000, 2, 8, &used, &demand);
    assert_true(fabs(demand - 2.0) < 1e-9);
    /* Never below what it used (a limit lowered since, QEMU's own threads). */
    t1 = (VoDrsCpuCounters){ t0.cpu_ns + 5000000000ULL, t0.wait_ns };
    vo_drs_cpu_sample(&t0, &t1, 10000, 2, 0.3, &used, &demand);
    assert_true(fabs(used - 0.5) < 1e-9 && fabs(demand - 0.5) < 1e-9);
    /* Nothing waited: demand is use. */
    vo_drs_cpu_sample(&t0, &t1, 10000, 2, 0, &used, &demand);
    assert_true(fabs(demand - 0.5) < 1e-9);
    /* A new process (either counter went back) or no wall time: no sample,
     * 0. */
    t1 = (VoDrsCpuCounters){ t0.cpu_ns - 1, t0.wait_ns + 1000000000ULL };
    assert_false(vo_drs_cpu_sample(&t0, &t1, 10000, 2, 0, &used, &demand));
    assert_true(used == 0 && demand == 0);
    t1 = (VoDrsCpuCounters){ t0.cpu_ns + 1000000000ULL, t0.wait_ns - 1 };
    assert_false(vo_drs_cpu_sample(&t0, &t1, 10000, 2, 0, &used, &demand));
    assert_true(used == 0 && demand == 0);
    t1 = (VoDrsCpuCounters){ t0.cpu_ns + 1000000000ULL, t0.wait_ns };
    assert_false(vo_drs_cpu_sample(&t0, &t1, 0, 2, 0, &used, &demand));
    assert_true(used == 0 && demand == 0);
    assert_false(vo_drs_cpu_sample(&t0, &t1, -5, 2, 0, &used, &demand));
    assert_true(used == 0 && demand == 0);
    /* vcpus 0 (unknown): only the limit caps. */
    t1 = (VoDrsCpuCounters){ t0.cpu_ns, t0.wait_ns + 30000000000ULL };
    vo_drs_cpu_sample(&t0, &t1, 10000, 0, 0, &used, &demand);
    assert_true(fabs(demand - 3.0) < 1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(modes_to_and_from_strings),
        cmocka_unit_test(threshold_falls_with_the_level),
        cmocka_unit_test(imbalance_is_the_spread_of_host_load_points),
        cmocka_unit_test(a_move_needs_rounds_above_the_threshold),
        cmocka_unit_test(a_move_needs_rounds_of_the_same_imbalance),
        cmocka_unit_test(the_threshold_depends_on_the_level),
        cmocka_unit_test(mode_off_recommends_nothing),
        cmocka_unit_test(cooldown_and_not_movable_are_left_alone),
        cmocka_unit_test(a_failed_move_backs_off_until_retry_after),
        cmocka_unit_test(targets_must_receive_and_have_room),
        cmocka_unit_test(groups_hold),
        cmocka_unit_test(no_move_overshoots_the_source),
        cmocka_unit_test(too_small_a_gain_is_no_move),
        cmocka_unit_test(best_move_by_improvement_per_cost),
        cmocka_unit_test(memory_in_use_not_size_decides),
        cmocka_unit_test(memory_measure_falls_back_to_the_size),
        cmocka_unit_test(bad_input_is_refused),
        cmocka_unit_test(targets_must_boot_the_vms_firmware),
        cmocka_unit_test(targets_must_have_the_vms_networks),
        cmocka_unit_test(targets_must_reach_the_vms_pools),
        cmocka_unit_test(targets_networks_of_another_project_are_left_out),
        cmocka_unit_test(cpu_demand_from_counters),
        cmocka_unit_test(cpu_measure_carries_a_vm_not_sampled_yet),
        cmocka_unit_test(a_moved_vms_first_sample_on_its_new_host_is_not_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
