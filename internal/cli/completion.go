package cli

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Shell completion: cobra's `strata completion bash|zsh|fish|powershell`
// completes commands and flags; these functions complete the names of
// topics and groups by asking the cluster (briefly: a slow or absent
// cluster must not hang the shell, so failures complete nothing).

const completionTimeout = 2 * time.Second

// completionNames lists names from the cluster for shell completion.
func completionNames(env *Env, list func(context.Context, *Env) ([]string, error), toComplete string) []string {
	if env.resolveBrokers != nil {
		env.resolveBrokers()
	}
	if env.Timeout <= 0 || env.Timeout > completionTimeout {
		env.Timeout = completionTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	names, err := list(ctx, env)
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	return out
}

func listTopicNames(ctx context.Context, env *Env) ([]string, error) {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	return topics.Names(), nil
}

func listGroupNames(ctx context.Context, env *Env) ([]string, error) {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	return groups.Groups(), nil
}

// completeNames completes every positional argument (many) or only the
// first (!many) from list.
func completeNames(env *Env, many bool, list func(context.Context, *Env) ([]string, error)) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if !many && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names := completionNames(env, list, toComplete)
		// Do not offer a name already given.
		out := names[:0]
		for _, n := range names {
			if !slices.Contains(args, n) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeTopics completes topic names: of every argument if many, else of
// the first.
func completeTopics(env *Env, many bool) cobra.CompletionFunc {
	return completeNames(env, many, listTopicNames)
}

// completeGroups completes group names.
func completeGroups(env *Env, many bool) cobra.CompletionFunc {
	return completeNames(env, many, listGroupNames)
}

// completeTopicFlag completes the value of a --topic flag.
func completeTopicFlag(env *Env) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return completionNames(env, listTopicNames, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}
