// Package readme runs a console session of README.md against a fresh
// broker and compares what each command prints with what the README shows,
// so that the documentation cannot drift from the binary unnoticed.
package readme
