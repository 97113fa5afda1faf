package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/internal/config"
)

// configCommand is `strata config list`: the broker's settings, from the
// same registry the broker validates them with.
func configCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "The broker's settings: names, types, defaults, valid values",
	}
	var asJSON, markdown bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List every broker setting (--json for machines, --markdown for docs/configuration.md)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			switch {
			case asJSON:
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					Keys    []config.KeyDoc `json:"keys"`
					Ignored [][2]string     `json:"kafka_ignored"`
					Refused [][2]string     `json:"kafka_refused"`
				}{config.Reference(), config.IgnoredKafkaKeys(), config.RefusedKafkaKeys()})
			case markdown:
				_, err := fmt.Fprint(out, config.Markdown())
				return err
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tTYPE\tDEFAULT\tVALID\tDYNAMIC\tKAFKA")
			for _, k := range config.Reference() {
				dyn := "no"
				if k.Dynamic {
					dyn = "yes"
				}
				kafka := k.Kafka
				switch {
				case kafka == k.Name:
					kafka = "same"
				case kafka == "":
					kafka = "-"
				}
				def := k.Default
				if len(def) > 24 {
					def = def[:21] + "..."
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.Name, k.Type, def, k.Valid, dyn, kafka)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "machine-readable JSON")
	list.Flags().BoolVar(&markdown, "markdown", false, "the Markdown of docs/configuration.md")
	cmd.AddCommand(list)
	return cmd
}
