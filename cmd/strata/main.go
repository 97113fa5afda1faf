// Command strata is the Strata broker and its command-line tools in one
// binary: `strata serve` runs a broker; the other subcommands (internal/cli)
// talk to any Kafka-compatible cluster.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/internal/cli"
)

func main() {
	root := &cobra.Command{
		Use:           "strata",
		Short:         "Strata: a Kafka-compatible streaming log in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCommand(), configCommand())
	cli.AddCommands(root)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "strata:", oneLine(err))
		os.Exit(cli.ExitCode(err)) // 1, or 2 from `cluster health` and `cluster reassign --verify`
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
