package audit

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// TestCrashKill runs a writer in a child process, kills it with SIGKILL at
// a random moment, and checks that every record whose Begin or Finish had
// returned is on disk, that the chain verifies, and that the restarted
// store continues with contiguous seqs. Three rounds on the same directory.
func TestCrashKill(t *testing.T) {
	if dir := os.Getenv("AUDIT_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	acked := map[uint64]bool{}
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKill$", "-test.count=1")
		cmd.Env = append(os.Environ(), "AUDIT_CRASH_CHILD="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		killAt := 100 + rand.IntN(400)
		n := 0
		for sc.Scan() {
			var q uint64
			if _, err := fmt.Sscanf(sc.Text(), "ack %d", &q); err != nil {
				continue
			}
			acked[q] = true
			if n++; n == killAt {
				cmd.Process.Kill() // SIGKILL: no deferred Close, no final checkpoint
			}
		}
		cmd.Wait()
		if n < killAt {
			t.Fatalf("round %d: child stopped after %d acks", round, n)
		}

		s := openStore(t, crashOptions(dir))
		head := s.Head()
		for q := range acked {
			if q > head.Seq {
				t.Fatalf("round %d: acknowledged record %d lost (head %d)", round, q, head.Seq)
			}
			if _, err := s.Get(context.Background(), q); err != nil {
				t.Fatalf("round %d: acknowledged record %d: %v", round, q, err)
			}
		}
		rep := verify(t, s)
		if !rep.OK() || rep.Last != head.Seq {
			t.Fatalf("round %d: verify after SIGKILL: %+v %v", round, rep, rep.Problem)
		}
		// The index's files, flushed and merged while the child was killed,
		// hold what the log implies.
		ix := verifyIndex(t, s)
		if !ix.OK() || ix.Through == 0 {
			t.Fatalf("round %d: the index after SIGKILL: %+v", round, ix)
		}
		if rq, _ := call(t, s, 0); rq.Seq != head.Seq+1 {
			t.Fatalf("round %d: continued at %d after head %d", round, rq.Seq, head.Seq)
		}
		s.Close()
		t.Logf("round %d: killed after %d acks, head %d, %d signed, index files match through %d", round, n, head.Seq, rep.Signed, ix.Through)
	}
}

// crashOptions: checkpoints every 50 records, index runs every 64 pairs
// (flushes and merges all the time).
func crashOptions(dir string) Options {
	opt := testOptions(dir)
	opt.CheckpointEvery, opt.IndexFlushEntries = 50, 64
	return opt
}

func crashChild(dir string) {
	s, err := Open(crashOptions(dir))
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	ack := func(q uint64) {
		mu.Lock()
		fmt.Fprintf(w, "ack %d\n", q)
		w.Flush()
		mu.Unlock()
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := g; ; i += 16 {
				c, err := s.Begin(ctx, request(i))
				if err != nil {
					continue
				}
				ack(c.Receipt().Seq)
				if rc, err := c.Finish(ctx, outcome(i)); err == nil {
					ack(rc.Seq)
				}
			}
		})
	}
	wg.Wait()
}
