package connector

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestHeadersGet(t *testing.T) {
	h := Headers{{"Content-Type", "application/json"}, {"Etag", `"1"`}}
	if h.Get("Etag") != `"1"` || h.Get("Location") != "" || Headers(nil).Get("Etag") != "" {
		t.Errorf("Get misread %v", h)
	}
}

// deadlineOnly has a deadline but no Done channel, like the executor's
// contexts for calls that nothing but time can end.
type deadlineOnly struct {
	context.Context
	d time.Time
}

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.d, true }

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("full sleep: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	if err := Sleep(ctx, 5*time.Second); !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Errorf("cancelled sleep: %v after %s", err, time.Since(start))
	}
	start = time.Now()
	dl := deadlineOnly{context.Background(), time.Now().Add(30 * time.Millisecond)}
	if err := Sleep(dl, 5*time.Second); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("deadline-only sleep: %v after %s", err, time.Since(start))
	}
}

func TestErrorClassifies(t *testing.T) {
	cause := errors.New("dial tcp 127.0.0.1:1: connection refused")
	err := &Error{Source: "s", Operation: "o", Kind: ErrUnavailable, Err: cause}
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, cause) {
		t.Error("errors.Is does not see kind and cause")
	}
	if msg := err.Error(); msg != `source "s" operation "o": source unreachable` {
		t.Errorf("message %q (it must not contain the cause's address)", msg)
	}
}
