package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Env is what every command needs: where the cluster is, how long to wait
// for it, and where to read and write. Commands take an *Env and their own
// options struct and return an error; cobra is only a thin layer around them,
// so tests drive the same functions with buffers.
type Env struct {
	Brokers  []string       // seed brokers, host:port
	ClientID string         // Kafka client id
	Timeout  time.Duration  // per operation: connecting, a request, a delivery
	Verbose  bool           // more detail in output and errors
	JSON     bool           // machine-readable output
	Color    bool           // ANSI colour in tables (only on a terminal)
	Security ClientSecurity // TLS and SASL (security.go)

	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	// Now is the clock used by perf (tests may inject one); nil means
	// time.Now.
	Now func() time.Time

	dialMu         sync.Mutex
	lastDialErr    error
	resolveBrokers func() // sets Brokers from --brokers / STRATA_BROKERS
}

// DefaultBrokers is used when neither --brokers nor STRATA_BROKERS is set.
const DefaultBrokers = "localhost:9092"

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// dialHook remembers the most recent connection failure so that a timeout
// can be reported as "cannot connect" rather than a bare deadline.
type dialHook struct{ e *Env }

func (h dialHook) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	h.e.dialMu.Lock()
	defer h.e.dialMu.Unlock()
	if err != nil {
		h.e.lastDialErr = err
	} else {
		h.e.lastDialErr = nil
	}
}

// clientOpts are the options every client shares; extra are appended.
func (e *Env) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(e.Brokers...),
		kgo.DialTimeout(timeout),
		kgo.RetryTimeout(timeout),
		kgo.WithHooks(dialHook{e}),
	}
	if e.ClientID != "" {
		opts = append(opts, kgo.ClientID(e.ClientID))
	}
	if e.Verbose {
		// --verbose: the client's own debug log (connections, every
		// request and response) on stderr, as rpk -v does.
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(e.Stderr, kgo.LogLevelDebug, func() string {
			return "strata: " + time.Now().Format("15:04:05.000") + " "
		})))
	}
	return append(opts, extra...)
}

// newClient builds a kgo client on the shared connection settings.
func (e *Env) newClient(extra ...kgo.Opt) (*kgo.Client, error) {
	if len(e.Brokers) == 0 {
		return nil, errors.New("no brokers given (--brokers or STRATA_BROKERS)")
	}
	sec, err := e.Security.opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(e.clientOpts(append(sec, extra...)...)...)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return cl, nil
}

// newAdmin builds a kadm client; close the returned kgo client when done.
func (e *Env) newAdmin() (*kadm.Client, *kgo.Client, error) {
	cl, err := e.newClient()
	if err != nil {
		return nil, nil, err
	}
	return e.adminFor(cl), cl, nil
}

// adminFor wraps an existing client for admin requests.
func (e *Env) adminFor(cl *kgo.Client) *kadm.Client {
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(e.timeout().Milliseconds()))
	return adm
}

func (e *Env) timeout() time.Duration {
	if e.Timeout <= 0 {
		return 10 * time.Second
	}
	return e.Timeout
}

// opCtx bounds one operation on the cluster by --timeout.
func (e *Env) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.timeout())
}

// wrap turns a client error into one line that says what failed and why.
// A deadline after failed dials becomes "cannot connect to brokers".
func (e *Env) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	e.dialMu.Lock()
	dialErr := e.lastDialErr
	e.dialMu.Unlock()
	if dialErr != nil && (errors.Is(err, context.DeadlineExceeded) || isNetErr(err)) {
		return fmt.Errorf("%s: cannot connect to brokers %s: %w", what, strings.Join(e.Brokers, ","), dialErr)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: no answer from brokers %s within %s", what, strings.Join(e.Brokers, ","), e.timeout())
	}
	return fmt.Errorf("%s: %w", what, describeErr(err))
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// describeErr makes Kafka error codes readable: "UNKNOWN_TOPIC_OR_PARTITION:
// This server does not host this topic-partition." becomes the description
// with the code in brackets.
func describeErr(err error) error {
	var ke *kerr.Error
	if errors.Is(err, kerr.LeaderNotAvailable) {
		// Kafka's text ("in the middle of a leadership election") is
		// wrong when every replica is down, the usual cause.
		return fmt.Errorf("no leader: the partition's replicas are offline, or a leader is being elected (%s)", kerr.LeaderNotAvailable.Message)
	}
	if errors.As(err, &ke) {
		return fmt.Errorf("%s (%s)", strings.TrimSuffix(ke.Description, "."), ke.Message)
	}
	return err
}

// errWithMessage adds a broker-supplied message to a Kafka error. The
// broker's message is specific ("topic has 3 partitions; the new count must
// be larger") where the code's generic description can mislead ("Number of
// partitions is below 1"), so with a message the code is only named.
func errWithMessage(err error, msg string) error {
	var ke *kerr.Error
	if msg != "" && errors.As(err, &ke) {
		return fmt.Errorf("%s (%s)", msg, ke.Message)
	}
	err = describeErr(err)
	if msg != "" && !strings.Contains(err.Error(), msg) {
		return fmt.Errorf("%w: %s", err, msg)
	}
	return err
}

// AddCommands adds the client subcommands to root: topic, produce, consume,
// group, cluster and perf, with the shared connection flags as persistent
// flags of root.
func AddCommands(root *cobra.Command) {
	env := &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	addCommands(root, env, os.Getenv)
}

// addCommands is AddCommands with the Env and environment injectable.
func addCommands(root *cobra.Command, env *Env, getenv func(string) string) {
	pf := root.PersistentFlags()
	brokers := DefaultBrokers
	if v := getenv("STRATA_BROKERS"); v != "" {
		brokers = v
	}
	var brokerList string
	pf.StringVar(&brokerList, "brokers", brokers, "comma-separated seed brokers, host:port (env STRATA_BROKERS)")
	pf.StringVar(&env.ClientID, "client-id", "strata-cli", "Kafka client id")
	pf.DurationVar(&env.Timeout, "timeout", 10*time.Second, "how long to wait for the cluster: connecting, each request, each delivery")
	pf.BoolVarP(&env.Verbose, "verbose", "v", false, "log every connection, request and response to stderr")
	addSecurityFlags(pf, &env.Security, getenv)
	var profile string
	pf.StringVar(&profile, "profile", getenv("STRATA_PROFILE"), "use this saved profile's brokers and security settings (env STRATA_PROFILE; default: the current one, see strata profile)")

	// Completion functions run without the pre-run hooks, so they resolve
	// the brokers themselves.
	env.resolveBrokers = func() { env.Brokers = splitList(brokerList) }
	prev := root.PersistentPreRunE
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if err := applyProfile(cmd, env, profile, &brokerList, getenv); err != nil {
			return err
		}
		env.resolveBrokers()
		if env.Stdout != nil {
			env.Color = isTerminal(env.Stdout) && getenv("NO_COLOR") == ""
		}
		if prev != nil {
			return prev(cmd, args)
		}
		return nil
	}

	root.AddCommand(
		topicCommand(env),
		produceCommand(env),
		consumeCommand(env),
		groupCommand(env),
		txnCommand(env),
		clusterCommand(env),
		perfCommand(env),
		userCommand(env, getenv),
		profileCommand(env, getenv),
		aclCommand(env),
		quotaCommand(env),
	)
}

// addJSONFlag binds --json on cmd to env.JSON.
func addJSONFlag(cmd *cobra.Command, env *Env) {
	cmd.Flags().BoolVar(&env.JSON, "json", false, "machine-readable JSON output")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
