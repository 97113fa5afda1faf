package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/internal/version"
)

// versionCommand prints what binary this is (also `strata --version`).
func versionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := version.Get()
			out := cmd.OutOrStdout()
			if asJSON {
				b, err := json.MarshalIndent(info, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(out, "%s\n", b)
				return err
			}
			commit := info.Commit
			if info.Modified {
				commit += " (modified)"
			}
			_, err := fmt.Fprintf(out, "strata %s\ncommit:     %s\nbuilt:      %s\ngo version: %s\nplatform:   %s\n",
				info.Version, commit, info.Date, info.GoVersion, info.Platform)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
