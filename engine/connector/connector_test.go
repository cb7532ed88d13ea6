package connector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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

func TestRetryDelay(t *testing.T) {
	base, maxD := 100*time.Millisecond, time.Second
	for n, ceiling := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 60: time.Second} {
		for range 200 {
			if d := RetryDelay(base, maxD, n, 0); d < 0 || d > ceiling {
				t.Fatalf("RetryDelay(%d) = %s, want within [0, %s]", n, d, ceiling)
			}
		}
	}
	if d := RetryDelay(base, maxD, 1, 5*time.Second); d != time.Second {
		t.Fatalf("Retry-After not capped: %s", d)
	}
	if d := RetryDelay(base, maxD, 1, 300*time.Millisecond); d != 300*time.Millisecond {
		t.Fatalf("Retry-After not honoured: %s", d)
	}
}

func TestRetryAfter(t *testing.T) {
	future := time.Now().Add(90 * time.Second).UTC()
	for v, want := range map[string][2]time.Duration{
		"":                             {0, 0},
		"7":                            {7 * time.Second, 7 * time.Second},
		"-3":                           {0, 0},
		"soon":                         {0, 0},
		future.Format(http.TimeFormat): {80 * time.Second, 91 * time.Second},
		future.Format(time.RFC850):     {80 * time.Second, 91 * time.Second},
		future.Format(time.ANSIC):      {80 * time.Second, 91 * time.Second},
		time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat): {0, 0},
	} {
		if got := RetryAfter(v); got < want[0] || got > want[1] {
			t.Errorf("RetryAfter(%q) = %s, want within %v", v, got, want)
		}
	}
}

func TestRetryable(t *testing.T) {
	for err, want := range map[error]bool{
		&Error{Kind: ErrTimeout}:                            true,
		&Error{Kind: ErrUnavailable}:                        true,
		&Error{Kind: ErrUnavailable, Err: context.Canceled}: false,
		&Error{Kind: ErrBadRequest}:                         false,
		&Error{Kind: ErrTooLarge}:                           false,
		&Error{Kind: ErrUnknownOp}:                          false,
		&CircuitOpenError{RetryAfter: time.Second}:          false,
	} {
		if got := Retryable(err); got != want {
			t.Errorf("Retryable(%v) = %v, want %v", err, got, want)
		}
	}
}

func TestCircuitOpenError(t *testing.T) {
	var err error = fmt.Errorf("wrapped: %w", &CircuitOpenError{Source: "reg", Operation: "get", RetryAfter: 1500 * time.Millisecond})
	if !errors.Is(err, ErrCircuitOpen) {
		t.Fatal("errors.Is(err, ErrCircuitOpen) is false")
	}
	for _, other := range []error{ErrUnavailable, ErrTimeout, context.Canceled} {
		if errors.Is(err, other) {
			t.Errorf("a circuit-open error matches %v", other)
		}
	}
	var ce *CircuitOpenError
	if !errors.As(err, &ce) || ce.RetryAfterSeconds() != 2 {
		t.Fatalf("errors.As: %v, seconds %d", ce, ce.RetryAfterSeconds())
	}
	for d, want := range map[time.Duration]int{0: 1, -time.Second: 1, time.Second: 1, time.Second + 1: 2, time.Minute: 60} {
		if got := (&CircuitOpenError{RetryAfter: d}).RetryAfterSeconds(); got != want {
			t.Errorf("RetryAfterSeconds(%s) = %d, want %d", d, got, want)
		}
	}
	if msg := err.Error(); msg != `wrapped: source "reg" operation "get": circuit open: not called, retry after 1.5s` {
		t.Errorf("message %q", msg)
	}
	if errors.Is(&Error{Kind: ErrUnavailable}, ErrCircuitOpen) {
		t.Error("an unreachable source matches ErrCircuitOpen")
	}
}
