// Package fuzzbudget is the per-input CPU budget of Strata's fuzz targets
// (issue 16: no input may cost more than a small constant times its size).
// A target runs each input's decoding through Run, which measures the CPU
// time of the calling OS thread and fails the input when it is over
// budget, so that a fuzzer finds slow inputs as it finds panics. Only
// tests import it.
package fuzzbudget
