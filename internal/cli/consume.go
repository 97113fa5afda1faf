package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ConsumeOptions are the options of `consume`.
type ConsumeOptions struct {
	Topic         string
	Offset        string  // start, end, N, -N, @unix-ms
	Partitions    []int32 // empty: all
	Group         string  // consume as a member of this group, committing offsets
	Num           int     // stop after this many records (0: no limit)
	Follow        bool    // keep waiting for new records at the end
	Format        string  // kcat-style template
	ReadCommitted bool
}

func consumeCommand(env *Env) *cobra.Command {
	var o ConsumeOptions
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print records of a topic",
		Long: `Print the records of a topic, from the position -o picks, up to the end of
each partition (or forever with --follow, or until -n records).

-o/--offset: start, end, an offset N, -N (the last N records of each
partition) or @<unix-ms> (the first record at or after that time). With -g
the group's committed offsets win; -o applies only where there is none.

-f/--format is a template: %t topic, %p partition, %o offset, %T timestamp
(unix ms), %d timestamp (RFC 3339), %k key, %s value, %K and %S their lengths,
%h headers, %% a percent sign; \n, \t escapes. Default: '%s\n'.

--json prints one object per line: topic, partition, offset, timestamp, key,
value and headers (in order); a key or value that is not UTF-8 is base64,
marked by key_encoding or value_encoding.`,
		Example: `  strata consume orders
  strata consume orders -o -10 -f '%p/%o %k=%s\n'
  strata consume orders -o @1700000000000 -n 5 --json
  strata consume orders -g billing --follow`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeTopics(env, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Topic = args[0]
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return Consume(ctx, env, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Offset, "offset", "o", "start", "where to start: start, end, N, -N or @<unix-ms>")
	f.Int32SliceVarP(&o.Partitions, "partitions", "p", nil, "only these partitions (comma-separated)")
	f.StringVarP(&o.Group, "group", "g", "", "consume in this consumer group, committing offsets")
	f.IntVarP(&o.Num, "num", "n", 0, "stop after this many records")
	f.BoolVar(&o.Follow, "follow", false, "keep waiting for new records instead of stopping at the end")
	f.StringVarP(&o.Format, "format", "f", defaultFormat, "output template (see above)")
	f.BoolVar(&o.ReadCommitted, "read-committed", false, "only records of committed transactions")
	addJSONFlag(cmd, env)
	return cmd
}

// partitionRange is where consumption of one partition starts and, unless
// following, where it stops.
type partitionRange struct{ from, to int64 }

// Consume prints records per the options; it stops at the end of every
// partition unless Follow, or after Num records.
func Consume(ctx context.Context, env *Env, o ConsumeOptions) error {
	spec, err := ParseOffsetSpec(o.Offset)
	if err != nil {
		return err
	}
	if o.Group != "" && len(o.Partitions) > 0 {
		return errors.New("consume: -p/--partitions and -g/--group do not mix: a group assigns partitions itself")
	}
	var rf *recordFormat
	if !env.JSON {
		if rf, err = compileFormat(o.Format); err != nil {
			return err
		}
	}

	adm, admCl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer admCl.Close()
	ranges, err := consumeRanges(ctx, env, adm, o, spec)
	if err != nil {
		return err
	}

	prog := newConsumeProgress(ranges, o.Group != "")
	opts := []kgo.Opt{kgo.FetchMaxWait(500 * time.Millisecond)}
	if o.ReadCommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	if o.Group != "" {
		opts = append(opts, kgo.ConsumerGroup(o.Group), kgo.ConsumeTopics(o.Topic),
			kgo.ConsumeResetOffset(spec.kgoOffset()), kgo.AutoCommitMarks())
		opts = append(opts, prog.groupHooks(o.Topic)...)
	} else {
		parts := map[int32]kgo.Offset{}
		for p, r := range ranges {
			if o.Follow || r.from < r.to {
				parts[p] = kgo.NewOffset().At(r.from)
			}
		}
		if len(parts) == 0 {
			return nil // nothing to read and not following
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.Topic: parts}))
	}
	cl, err := env.newClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	if !o.Follow && prog.nothingToRead() {
		return nil
	}

	var (
		buf   []byte
		count int
	)
	out := env.Stdout
	defer func() {
		if o.Group != "" {
			cctx, cancel := env.opCtx(context.Background())
			if err := cl.CommitMarkedOffsets(cctx); err != nil {
				fmt.Fprintf(env.Stderr, "strata: committing offsets of group %q: %v\n", o.Group, env.wrap("commit", err))
			}
			cancel()
		}
	}()
	lastRecord := time.Now()
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if !o.Follow {
			// Bounded reads poll in short slices, to notice a group
			// assignment that leaves nothing to read, and stop after
			// --timeout without records: that covers partitions whose
			// last offsets are transaction markers or compacted away,
			// which no record ever reaches.
			pctx, cancel = context.WithTimeout(ctx, min(250*time.Millisecond, env.timeout()))
		}
		fetches := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil // interrupted
		}
		if fetches.IsClientClosed() {
			return nil
		}
		var fatal error
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			if fatal == nil {
				fatal = env.wrap(fmt.Sprintf("consume %s/%d", t, p), err)
			}
		})
		if fatal != nil {
			return fatal
		}
		if fetches.NumRecords() == 0 && !o.Follow {
			pending := prog.remaining()
			if pending == 0 {
				return nil
			}
			if time.Since(lastRecord) < env.timeout() {
				continue
			}
			if pending > 0 {
				fmt.Fprintf(env.Stderr, "strata: no records for %s; stopping with %d partitions short of the end offsets seen at start\n", env.timeout(), pending)
			} else {
				fmt.Fprintf(env.Stderr, "strata: no partitions assigned by group %q within %s; stopping\n", o.Group, env.timeout())
			}
			return nil
		}
		lastRecord = time.Now()
		buf = buf[:0]
		done := false
		fetches.EachRecord(func(r *kgo.Record) {
			if done {
				return
			}
			if env.JSON {
				buf, _ = appendRecordJSON(buf, r)
			} else {
				buf = rf.append(buf, r)
			}
			count++
			if o.Group != "" {
				cl.MarkCommitRecords(r)
			}
			prog.advance(r.Partition, r.Offset+1)
			if o.Num > 0 && count >= o.Num {
				done = true
			}
		})
		if _, err := out.Write(buf); err != nil {
			return fmt.Errorf("consume: writing output: %w", err)
		}
		if done || (!o.Follow && prog.remaining() == 0) {
			return nil
		}
	}
}

// consumeRanges resolves, per partition to read, where to start and where
// the end is now. For a group, partitions start at the committed offset.
func consumeRanges(ctx context.Context, env *Env, adm *kadm.Client, o ConsumeOptions, spec OffsetSpec) (map[int32]partitionRange, error) {
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	details, err := requireTopics(ctx, env, adm, o.Topic)
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	all := details[o.Topic].Partitions.Numbers()
	parts := all
	if len(o.Partitions) > 0 {
		for _, p := range o.Partitions {
			if !slices.Contains(all, p) {
				return nil, fmt.Errorf("consume: topic %q has no partition %d (it has %d)", o.Topic, p, len(all))
			}
		}
		parts = o.Partitions
	}
	starts, err := adm.ListStartOffsets(ctx, o.Topic)
	if err != nil {
		return nil, env.wrap("consume: list start offsets", err)
	}
	listEnd := adm.ListEndOffsets
	if o.ReadCommitted {
		listEnd = adm.ListCommittedOffsets
	}
	ends, err := listEnd(ctx, o.Topic)
	if err != nil {
		return nil, env.wrap("consume: list end offsets", err)
	}
	var atTime kadm.ListedOffsets
	if spec.Kind == offTime {
		if atTime, err = adm.ListOffsetsAfterMilli(ctx, spec.N, o.Topic); err != nil {
			return nil, env.wrap("consume: list offsets by time", err)
		}
	}
	var committed kadm.OffsetResponses
	if o.Group != "" {
		committed, err = adm.FetchOffsetsForTopics(ctx, o.Group, o.Topic)
		if errors.Is(err, kerr.GroupIDNotFound) {
			err = nil // a new group: nothing committed
		}
		if err != nil {
			return nil, env.wrap(fmt.Sprintf("consume: fetch committed offsets of group %q", o.Group), err)
		}
	}
	ranges := make(map[int32]partitionRange, len(parts))
	for _, p := range parts {
		s, ok1 := starts.Lookup(o.Topic, p)
		e, ok2 := ends.Lookup(o.Topic, p)
		if !ok1 || !ok2 || s.Err != nil || e.Err != nil {
			err := s.Err
			if err == nil {
				err = e.Err
			}
			return nil, fmt.Errorf("consume: offsets of %s/%d unavailable: %v", o.Topic, p, describeErr(err))
		}
		t := int64(-1)
		if lo, ok := atTime.Lookup(o.Topic, p); ok && lo.Err == nil {
			t = lo.Offset
		}
		from := spec.Resolve(s.Offset, e.Offset, t)
		if c, ok := committed.Lookup(o.Topic, p); ok && c.Err == nil && c.At >= 0 {
			from = min(max(c.At, s.Offset), e.Offset)
		}
		ranges[p] = partitionRange{from: from, to: e.Offset}
	}
	return ranges, nil
}
