package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
)

// PerfOptions are the options shared by `perf produce|consume|e2e`.
type PerfOptions struct {
	Topic       string
	Records     int64         // stop after this many records (0: no limit)
	Duration    time.Duration // or after this long (0: no limit)
	RecordSize  int           // value bytes
	Rate        float64       // target records/s over all clients; 0: as fast as possible
	Acks        string
	Compression string
	Partitions  int32 // partitions of the topic if perf creates it
	Clients     int   // producer (or consumer) clients
	Linger      time.Duration
	Progress    time.Duration
}

func perfCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "perf",
		Short: "Measure produce, consume and end-to-end throughput and latency",
		Long: `Load generators in the spirit of kafka-producer-perf-test and franz-go's
bench. With --rate the producers are open loop: record i is due at
start + i/rate and its latency is measured from that intended time, so a
stalled broker shows up as latency instead of a lower send rate (no
coordinated omission). A progress line is printed to stderr every second and
a summary at the end (--json for machine-readable output).`,
	}
	cmd.AddCommand(perfModeCommand(env, "produce", "Produce records and measure acknowledgement latency"),
		perfModeCommand(env, "consume", "Consume records and measure throughput"),
		perfModeCommand(env, "e2e", "Produce and consume at once and measure produce-to-consume latency"))
	return cmd
}

func perfModeCommand(env *Env, mode, short string) *cobra.Command {
	o := PerfOptions{Progress: time.Second}
	cmd := &cobra.Command{
		Use:               mode + " TOPIC",
		Short:             short,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeTopics(env, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Topic = args[0]
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			switch mode {
			case "produce":
				return PerfProduce(ctx, env, o)
			case "consume":
				return PerfConsume(ctx, env, o)
			}
			return PerfE2E(ctx, env, o)
		},
	}
	f := cmd.Flags()
	f.Int64Var(&o.Records, "records", 0, "number of records (0 with --duration: no limit)")
	f.DurationVar(&o.Duration, "duration", 0, "how long to run (e.g. 30s)")
	f.Int32VarP(&o.Partitions, "partitions", "p", -1, "partitions if the topic has to be created (default: broker default)")
	f.IntVar(&o.Clients, "clients", 1, "number of clients")
	if mode != "consume" {
		f.IntVar(&o.RecordSize, "record-size", 100, "value size in bytes")
		f.Float64Var(&o.Rate, "rate", 0, "target records/s over all clients, open loop (0: as fast as possible)")
		f.StringVar(&o.Acks, "acks", "all", "all, 1 or 0")
		f.StringVar(&o.Compression, "compression", "none", "none, gzip, snappy, lz4 or zstd")
		f.DurationVar(&o.Linger, "linger", 0, "how long producers wait to fill a batch")
	}
	addJSONFlag(cmd, env)
	return cmd
}

func (o *PerfOptions) validate(producing bool) error {
	if o.Records < 0 || o.Duration < 0 {
		return errors.New("perf: --records and --duration must not be negative")
	}
	if producing && o.Records == 0 && o.Duration == 0 {
		return errors.New("perf: give --records N or --duration D")
	}
	if o.Clients < 1 {
		return fmt.Errorf("perf: --clients %d: want at least 1", o.Clients)
	}
	if producing && o.RecordSize < 0 {
		return fmt.Errorf("perf: --record-size %d: must not be negative", o.RecordSize)
	}
	if o.Rate < 0 {
		return fmt.Errorf("perf: --rate %g: must not be negative", o.Rate)
	}
	if o.Progress <= 0 {
		o.Progress = time.Second
	}
	return nil
}

// ensureTopic creates the perf topic if it does not exist.
func ensureTopic(ctx context.Context, env *Env, topic string, partitions int32) error {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, -1, nil, topic)
	if errors.Is(err, kerr.TopicAlreadyExists) {
		return nil
	}
	if err != nil {
		return env.wrap("perf: create topic "+topic, err)
	}
	if resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("perf: create topic %q: %w", topic, errWithMessage(resp.Err, resp.ErrMessage))
	}
	return nil
}

// PerfReport is the final summary of a perf run.
type PerfReport struct {
	Mode          string          `json:"mode"`
	Topic         string          `json:"topic"`
	Records       int64           `json:"records"`
	Bytes         int64           `json:"bytes"`
	Errors        int64           `json:"errors"`
	FirstError    string          `json:"first_error,omitempty"`
	Seconds       float64         `json:"seconds"`
	RecordsPerSec float64         `json:"records_per_sec"`
	MBPerSec      float64         `json:"mb_per_sec"`
	TargetRate    float64         `json:"target_rate,omitempty"`
	Latency       *LatencySummary `json:"latency,omitempty"`
}

// perfStats collects results from many goroutines; progress reads and
// resets the interval part.
type perfStats struct {
	mu       sync.Mutex
	total    histogram
	interval histogram
	records  int64
	bytes    int64
	errors   int64
	ivRecs   int64
	ivBytes  int64
	ivErrs   int64
	firstErr error
	latency  bool // whether latencies are recorded
}

func (s *perfStats) ok(n int, lat time.Duration) {
	s.mu.Lock()
	s.records++
	s.bytes += int64(n)
	s.ivRecs++
	s.ivBytes += int64(n)
	if s.latency {
		s.total.record(lat)
		s.interval.record(lat)
	}
	s.mu.Unlock()
}

func (s *perfStats) fail(err error) {
	s.mu.Lock()
	s.errors++
	s.ivErrs++
	if s.firstErr == nil {
		s.firstErr = err
	}
	s.mu.Unlock()
}

func (s *perfStats) received() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records
}

func (s *perfStats) count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records + s.errors
}

// progress prints one line per interval until ctx ends.
func (s *perfStats) progress(ctx context.Context, w io.Writer, every time.Duration, start time.Time, now func() time.Time) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := start
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := now()
		secs := n.Sub(last).Seconds()
		last = n
		s.mu.Lock()
		recs, byts, errs, iv := s.ivRecs, s.ivBytes, s.ivErrs, s.interval.summary()
		s.ivRecs, s.ivBytes, s.ivErrs = 0, 0, 0
		s.interval = histogram{}
		s.mu.Unlock()
		line := fmt.Sprintf("%6.1fs  %9.0f rec/s  %7.2f MB/s", n.Sub(start).Seconds(), float64(recs)/secs, float64(byts)/secs/1e6)
		if s.latency {
			line += fmt.Sprintf("  p50 %7.2fms  p99 %7.2fms  max %7.2fms", iv.P50, iv.P99, iv.Max)
		}
		fmt.Fprintf(w, "%s  errors %d\n", line, errs)
	}
}

func (s *perfStats) report(mode, topic string, elapsed time.Duration, rate float64) PerfReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	secs := elapsed.Seconds()
	r := PerfReport{Mode: mode, Topic: topic, Records: s.records, Bytes: s.bytes, Errors: s.errors,
		Seconds: secs, TargetRate: rate}
	if secs > 0 {
		r.RecordsPerSec = float64(s.records) / secs
		r.MBPerSec = float64(s.bytes) / secs / 1e6
	}
	if s.firstErr != nil {
		r.FirstError = describeErr(s.firstErr).Error()
	}
	if s.latency {
		l := s.total.summary()
		r.Latency = &l
	}
	return r
}

func writePerfReport(env *Env, r PerfReport) error {
	if env.JSON {
		if err := writeJSON(env.Stdout, r); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(env.Stdout, "%s %s: %d records, %s in %.2fs\n", r.Mode, r.Topic, r.Records, humanBytes(r.Bytes), r.Seconds)
		fmt.Fprintf(env.Stdout, "  throughput  %.0f records/s  %.2f MB/s", r.RecordsPerSec, r.MBPerSec)
		if r.TargetRate > 0 {
			fmt.Fprintf(env.Stdout, "  (target %.0f records/s)", r.TargetRate)
		}
		fmt.Fprintln(env.Stdout)
		if l := r.Latency; l != nil {
			fmt.Fprintf(env.Stdout, "  latency     p50 %.2fms  p90 %.2fms  p99 %.2fms  p99.9 %.2fms  max %.2fms  mean %.2fms\n",
				l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
		}
		fmt.Fprintf(env.Stdout, "  errors      %d\n", r.Errors)
		if r.FirstError != "" {
			fmt.Fprintf(env.Stdout, "  first error %s\n", r.FirstError)
		}
	}
	if r.Errors > 0 {
		return fmt.Errorf("perf %s: %d records failed: %s", r.Mode, r.Errors, r.FirstError)
	}
	return nil
}
