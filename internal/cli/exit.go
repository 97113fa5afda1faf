package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ExitStatus is an error that asks for a particular exit status: the
// command worked, but what it found is not what a script hoped for
// (`cluster health` finding offline partitions, `cluster reassign
// --verify` finding a reassignment still running).
type ExitStatus struct {
	Code int
	Err  error
}

func (e *ExitStatus) Error() string { return e.Err.Error() }
func (e *ExitStatus) Unwrap() error { return e.Err }

// ExitCode is the process exit status for err returned by a command: 0
// for nil, the code of an *ExitStatus, else 1.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var es *ExitStatus
	if errors.As(err, &es) {
		return es.Code
	}
	return 1
}

// requireAPI fails with one line when the cluster does not serve an API
// (an older Kafka, or a Strata without it yet) instead of leaving the
// client's "broker is too old" or a dropped connection to the user.
func requireAPI(ctx context.Context, env *Env, cl *kgo.Client, what string, key int16) error {
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		return env.wrap(what, err)
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey == key {
			return nil
		}
	}
	return unsupportedAPI(what, key)
}

func unsupportedAPI(what string, key int16) error {
	return fmt.Errorf("%s: the cluster does not support %s (API %d); it needs brokers that implement it", what, kmsg.NameForKey(key), key)
}

// apiErr is env.wrap, except that UNSUPPORTED_VERSION (a broker that lists
// the API but refuses the request) says which API is missing.
func apiErr(env *Env, what string, key int16, err error) error {
	if errors.Is(err, kerr.UnsupportedVersion) {
		return unsupportedAPI(what, key)
	}
	return env.wrap(what, err)
}
