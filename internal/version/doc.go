// Package version says what binary is running: the version, commit and
// build date set by the Makefile with -ldflags -X, else what the Go
// toolchain recorded in the build info (module version, VCS revision and
// time). It imports only the standard library.
package version
