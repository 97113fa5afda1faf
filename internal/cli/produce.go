package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ProduceOptions are the options of `produce`.
type ProduceOptions struct {
	Topic       string
	File        string   // read lines from here instead of stdin
	KeyDelim    string   // split each line into key and value at the first delim
	Headers     []string // key=value, added to every record
	Partition   int32    // -1: the default partitioner
	Compression string   // none, gzip, snappy, lz4, zstd
	Acks        string   // all, 1, 0
	Idempotent  bool
}

func produceCommand(env *Env) *cobra.Command {
	o := ProduceOptions{}
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce one record per line of stdin (or --file)",
		Long: `Produce one record per input line. With -k, each line is split at the first
delimiter into key and value. At the end the number of acknowledged records and
any failures are reported; the exit code is non-zero if any record failed.`,
		Example: `  echo hello | strata produce orders
  printf 'k1:v1\nk2:v2\n' | strata produce orders -k :
  strata produce orders --file events.txt --compression zstd -H source=import`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Topic = args[0]
			return Produce(cmd.Context(), env, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.File, "file", "", "read records from this file instead of stdin")
	f.StringVarP(&o.KeyDelim, "key-delim", "k", "", "split each line into key and value at this delimiter")
	f.StringArrayVarP(&o.Headers, "header", "H", nil, "header key=value added to every record (repeatable)")
	f.Int32Var(&o.Partition, "partition", -1, "produce to this partition (default: by key hash, or sticky without keys)")
	f.StringVar(&o.Compression, "compression", "none", "none, gzip, snappy, lz4 or zstd")
	f.StringVar(&o.Acks, "acks", "all", "all, 1 or 0 (1 and 0 turn idempotence off)")
	f.BoolVar(&o.Idempotent, "idempotent", true, "idempotent producer (needs --acks all)")
	addJSONFlag(cmd, env)
	return cmd
}

func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(name) {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("--compression %q: want none, gzip, snappy, lz4 or zstd", name)
}

// producerOpts maps acks, compression and idempotence to kgo options.
func producerOpts(acks, compression string, idempotent bool) ([]kgo.Opt, error) {
	codec, err := compressionCodec(compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.ProducerBatchCompression(codec)}
	switch strings.ToLower(acks) {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
		if !idempotent {
			opts = append(opts, kgo.DisableIdempotentWrite())
		}
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	default:
		return nil, fmt.Errorf("--acks %q: want all, 1 or 0", acks)
	}
	return opts, nil
}

// ProduceResult is what `produce --json` prints.
type ProduceResult struct {
	Topic        string          `json:"topic"`
	Acknowledged int64           `json:"acknowledged"`
	Failed       int64           `json:"failed"`
	Partitions   map[int32]int64 `json:"records_per_partition"`
	Errors       []string        `json:"errors,omitempty"`
}

// maxReportedErrors bounds how many individual failures are printed; the
// count is always exact.
const maxReportedErrors = 10

// Produce reads lines and produces one record per line, then reports how
// many were acknowledged and how many failed; any failure is an error.
func Produce(ctx context.Context, env *Env, o ProduceOptions) error {
	var hdrs []kgo.RecordHeader
	for _, h := range o.Headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return fmt.Errorf("--header %q: want key=value", h)
		}
		hdrs = append(hdrs, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	popts, err := producerOpts(o.Acks, o.Compression, o.Idempotent)
	if err != nil {
		return err
	}
	in := env.Stdin
	if o.File != "" {
		f, err := os.Open(o.File)
		if err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		defer f.Close()
		in = f
	}
	if o.Partition >= 0 {
		popts = append(popts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	popts = append(popts, kgo.DefaultProduceTopic(o.Topic), kgo.RecordDeliveryTimeout(max(env.timeout(), time.Second)),
		kgo.ProduceRequestTimeout(env.timeout()))
	cl, err := env.newClient(popts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	// Check the topic up front: a clear error instead of every record
	// failing after retries.
	{
		adm := env.adminFor(cl)
		cctx, cancel := env.opCtx(ctx)
		details, err := requireTopics(cctx, env, adm, o.Topic)
		cancel()
		if err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		if o.Partition >= 0 {
			if _, ok := details[o.Topic].Partitions[o.Partition]; !ok {
				return fmt.Errorf("produce: topic %q has no partition %d (it has %d)", o.Topic, o.Partition, len(details[o.Topic].Partitions))
			}
		}
	}

	var (
		acked, failed atomic.Int64
		mu            sync.Mutex
		errs          []string
		perPartition  = map[int32]int64{}
		wg            sync.WaitGroup
	)
	br := bufio.NewReaderSize(in, 64<<10)
	var line int64
	for {
		b, rerr := br.ReadBytes('\n')
		if len(b) > 0 {
			line++
			b = trimEOL(b)
			r := &kgo.Record{Value: b, Headers: hdrs}
			if o.Partition >= 0 {
				r.Partition = o.Partition
			}
			if o.KeyDelim != "" {
				if k, v, ok := strings.Cut(string(b), o.KeyDelim); ok {
					r.Key, r.Value = []byte(k), []byte(v)
				}
			}
			n := line
			wg.Add(1)
			cl.Produce(ctx, r, func(r *kgo.Record, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed.Add(1)
					if len(errs) < maxReportedErrors {
						errs = append(errs, fmt.Sprintf("line %d: %v", n, describeErr(err)))
					}
					return
				}
				acked.Add(1)
				perPartition[r.Partition]++
			})
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				wg.Wait()
				return fmt.Errorf("produce: reading input after %d lines: %w", line, rerr)
			}
			break
		}
	}
	wg.Wait()

	res := ProduceResult{Topic: o.Topic, Acknowledged: acked.Load(), Failed: failed.Load(), Partitions: perPartition, Errors: errs}
	if env.JSON {
		if err := writeJSON(env.Stdout, res); err != nil {
			return err
		}
	} else {
		for _, e := range errs {
			fmt.Fprintln(env.Stderr, "strata: "+e)
		}
		if more := res.Failed - int64(len(errs)); more > 0 {
			fmt.Fprintf(env.Stderr, "strata: ... and %d more failures\n", more)
		}
		fmt.Fprintf(env.Stdout, "produced %d records to %s: %d acknowledged, %d failed\n", line, o.Topic, res.Acknowledged, res.Failed)
	}
	if res.Failed > 0 {
		first := ""
		if len(errs) > 0 {
			first = ": first: " + errs[0]
		}
		return fmt.Errorf("produce: %d of %d records failed%s", res.Failed, line, first)
	}
	return nil
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}
