// Package crash holds process-level crash tests: a real strata binary is
// killed with SIGKILL during sustained produce, restarted on the same data
// dir, and every acknowledged record must be there, in order, exactly once.
//
// Run with STRATA_BIN pointing at a built binary (make crash does this);
// without it the test builds one.
package crash
