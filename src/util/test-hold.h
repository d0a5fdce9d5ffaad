/* test-hold.h: hold and fault points for tests. A file $VIREO_FAKE_FAULTS/<op>.hold
 * makes the code that reaches hold point <op> wait while it exists (at
 * most two minutes), after creating <op>.held: a test sees the operation
 * there and lets it go by removing the .hold file. Without the variable
 * (any real host) a hold point costs one getenv. The fake driver's
 * operations are such points (fake/fake-driver.c), and a few places of the
 * daemon where tests race two hosts, and vireo-fence's grant and renewal. */
#pragma once

void vo_test_hold(const char *op);
/* A fault point of the same directory: the hold point op, then the fault
 * file $VIREO_FAKE_FAULTS/<op> (util/fault-file.h): 0, or the negative
 * errno it says. The fake driver's operations, and a few of the daemon's
 * steps tests make fail (vm-start.c: an HA start refused before its task). */
int vo_test_fault(const char *op);
