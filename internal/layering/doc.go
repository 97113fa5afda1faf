// Package layering has no code: its test enforces the package layering
// (which internal packages may depend on which) with `go list`, so a
// dependency that crosses a layer fails the unit tests rather than
// waiting for review.
package layering
