package brokerlink

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/stratalog/strata/internal/controller"
)

// TestRemoteError: every code with a sentinel comes back as it, still
// carrying the Kafka error (so the broker answers the same code); others
// as ErrRemote.
func TestRemoteError(t *testing.T) {
	if remoteError(0, nil) != nil {
		t.Fatal("code 0 is an error")
	}
	for code, s := range sentinels {
		err := remoteError(code, nil)
		var ke *kerr.Error
		if !errors.Is(err, s) || !errors.As(err, &ke) || ke.Code != code {
			t.Errorf("code %d: %v, want %v wrapping the Kafka error", code, err, s)
		}
	}
	msg := "why"
	err := remoteError(kerr.ClusterAuthorizationFailed.Code, &msg)
	if !errors.Is(err, ErrRemote) || !errors.Is(err, kerr.ClusterAuthorizationFailed) || errors.Is(err, controller.ErrNotController) {
		t.Errorf("a code without a sentinel: %v", err)
	}
	if !NeedsRegistration(remoteError(kerr.StaleBrokerEpoch.Code, nil)) || !NeedsRegistration(remoteError(kerr.BrokerIDNotRegistered.Code, nil)) ||
		NeedsRegistration(remoteError(kerr.NotController.Code, nil)) {
		t.Error("NeedsRegistration")
	}
}
