// Command strata is the Strata broker and its command-line tools in one
// binary: `strata serve` runs a broker; the other subcommands (internal/cli)
// talk to any Kafka-compatible cluster.
package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/internal/cli"
	"github.com/stratalog/strata/internal/version"
)

func main() {
	root := &cobra.Command{
		Use:           "strata",
		Short:         "Strata: a Kafka-compatible streaming log in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Get().String(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return plainFlagError(err) })
	local := []*cobra.Command{serveCommand(), configCommand(), versionCommand()}
	for _, c := range local {
		noProfile(c)
	}
	root.AddCommand(local...)
	cli.AddCommands(root)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "strata:", oneLine(err))
		os.Exit(cli.ExitCode(err)) // 1, or 2 from `cluster health` and `cluster reassign --verify`
	}
}

// noProfile marks c and its subcommands as reading no CLI profile: they
// connect to no cluster, and a broker started with a HOME it cannot read
// (another user's, under systemd's User= without a home of its own) must
// start all the same.
func noProfile(c *cobra.Command) {
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[cli.NoProfileAnnotation] = "true"
	for _, sub := range c.Commands() {
		noProfile(sub)
	}
}

// oneLine makes an error one line: some (cobra's "unknown command" with
// its suggestions, a broker's message) come with line breaks.
func oneLine(err error) string {
	var parts []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}

// Go's parse errors in flag values ("strconv.ParseInt: parsing "abc":
// invalid syntax") say what the value should have been instead.
var goParseErr = regexp.MustCompile(`(strconv\.Parse(Int|Uint|Float|Bool): parsing "([^"]*)": (invalid syntax|value out of range))|(time: (invalid|unknown unit .* in) duration "([^"]*)")`)

func plainFlagError(err error) error {
	msg := goParseErr.ReplaceAllStringFunc(err.Error(), func(m string) string {
		sub := goParseErr.FindStringSubmatch(m)
		switch {
		case sub[2] == "Bool":
			return fmt.Sprintf("%q is not true or false", sub[3])
		case sub[4] == "value out of range":
			return fmt.Sprintf("%s is out of range", sub[3])
		case sub[2] == "Float":
			return fmt.Sprintf("%q is not a number", sub[3])
		case sub[2] != "":
			return fmt.Sprintf("%q is not a whole number", sub[3])
		default:
			return fmt.Sprintf("%q is not a duration (write it as 500ms, 10s, 2m or 1h)", sub[7])
		}
	})
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}
