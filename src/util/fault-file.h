/* fault-file.h: test-only fault points kept as files in a directory a test
 * names through an environment variable (the fake driver's
 * $VIREO_FAKE_FAULTS, the store's $VIREO_TEST_STORE_FAULTS). A file NAME
 * holding "N ERR" makes the next N takes of point NAME fail with ERR (EIO,
 * ENOSPC, ENOMEM, EBUSY, ETIMEDOUT, ESTALE (a compare that failed);
 * anything else: EIO); the count left is kept in the file, which goes with
 * the last one. */
#pragma once

/* 0 (no fault at name in dir), or the negative errno the file says (one
 * of its count used). */
int vo_fault_file_take(const char *dir, const char *name);
/* A hold point: while a file NAME.hold is in dir, waits (at most two
 * minutes), after creating NAME.held so a test sees it is held there. */
void vo_fault_file_hold(const char *dir, const char *name);
