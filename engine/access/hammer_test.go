package access

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHammer runs P goroutines × N calls on three grants while an admin
// suspends, resumes and revokes one and changes quotas of the others. The
// quota counts must come out exact: rebuilding the read model after each
// admin action must neither lose nor double a count.
func TestHammer(t *testing.T) {
	f := newFixtureWith(t, func(o *Options) { o.FailureLimit = 1 << 30 })
	svcA, svcB, svcC := testService, Service{Name: "person", Major: 1}, Service{Name: "vat", Major: 2}
	setQuota := func(svc Service, q Quota) {
		for _, g := range f.r.Grants(f.app.ID) {
			if g.Service == svc {
				if _, err := f.r.AmendGrant(ctx, admin, g.ID, Amendment{Quota: &q}); err != nil {
					t.Error(err)
				}
			}
		}
	}
	setQuota(svcA, Quota{Requests: 500, Period: time.Hour})
	f.onboard(svcB, Quota{Requests: 100, Period: time.Hour})
	f.onboard(svcC, Quota{})
	grantC := f.grant.ID

	const P, N = 8, 300
	svcs := []Service{svcA, svcB, svcC}
	var allowed [3]atomic.Int64
	var unexpected atomic.Int64
	phase := func() {
		var wg sync.WaitGroup
		for p := range P {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := f.call()
				for i := range N {
					k := (p + i) % 3
					c.Service = svcs[k]
					d := f.r.Decide(ctx, c)
					switch {
					case d.Allowed:
						allowed[k].Add(1)
					case k < 2 && d.Step == StepQuota && d.Problem.Status == 429:
					case k == 2 && d.Step == StepGrant && d.Problem.Status == 403:
					default:
						unexpected.Add(1)
						t.Errorf("service %s: unexpected refusal at %s: %s", svcs[k], d.Step, d.Reason)
					}
				}
			}()
		}
		wg.Wait()
	}
	// The admin works while the calls run.
	suspended := false
	quotaB := Quota{Requests: 100, Period: time.Hour}
	check := func(err error) {
		if err != nil {
			t.Error(err)
		}
	}
	adminLoop := func(stop <-chan struct{}, done chan<- struct{}) {
		defer close(done)
		fields := [][]string{{"name"}, nil}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if !suspended {
				check(f.r.Suspend(ctx, admin, grantC, "hammer"))
			} else {
				check(f.r.Resume(ctx, admin, grantC, "hammer"))
			}
			suspended = !suspended
			setQuota(svcB, quotaB) // the limit in force again: the count must survive
			fl := fields[i%2]
			for _, g := range f.r.Grants(f.app.ID) {
				if g.Service == svcA {
					_, err := f.r.AmendGrant(ctx, admin, g.ID, Amendment{Fields: &fl})
					check(err)
				}
			}
		}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go adminLoop(stop, done)
	phase()
	close(stop)
	<-done
	if a, b := allowed[0].Load(), allowed[1].Load(); a != 500 || b != 100 {
		t.Fatalf("phase 1: %d and %d calls allowed, want exactly 500 and 100", a, b)
	}
	// Raise both quotas; the counts carry on in the same window.
	setQuota(svcA, Quota{Requests: 1000, Period: time.Hour})
	quotaB = Quota{Requests: 300, Period: time.Hour}
	setQuota(svcB, quotaB)
	stop, done = make(chan struct{}), make(chan struct{})
	go adminLoop(stop, done)
	phase()
	close(stop)
	<-done
	if a, b := allowed[0].Load(), allowed[1].Load(); a != 1000 || b != 300 {
		t.Fatalf("phase 2: %d and %d calls allowed in all, want exactly 1000 and 300", a, b)
	}
	if unexpected.Load() != 0 {
		t.Fatalf("%d unexpected refusals", unexpected.Load())
	}
	// Revocation applies to the very next call.
	mustDo(t, f.r.Revoke(ctx, admin, grantC, "done"))
	c := f.call()
	c.Service = svcC
	if d := f.r.Decide(ctx, c); d.Allowed {
		t.Fatal("revoked grant still allowed")
	}
	t.Logf("grant C allowed %d of %d calls while being suspended and resumed", allowed[2].Load(), 2*P*N/3)
}
