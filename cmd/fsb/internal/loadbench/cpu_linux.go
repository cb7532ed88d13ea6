package loadbench

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuSample is a reading of the machine's CPU counters (jiffies) and of the
// share spent by this process and the candidate's own processes.
type cpuSample struct {
	busy, total, idle, ours, cand uint64
	ok                            bool
}

// sampleCPU reads /proc: the machine's busy and total time, and ours: this
// process plus pids and their children (nginx's master and workers, a
// bench-serve child): a candidate's own CPU is not "others'".
func sampleCPU(pids []int) cpuSample {
	var s cpuSample
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return s
	}
	var v [10]uint64
	for i := 1; i < len(f) && i <= len(v); i++ {
		v[i-1], _ = strconv.ParseUint(f[i], 10, 64)
	}
	// user nice system idle iowait irq softirq steal (guest is inside user)
	s.busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
	s.idle = v[3] + v[4]
	s.total = s.busy + s.idle
	self, ok := procTimes("self")
	if !ok {
		return s
	}
	s.ours = self
	if len(pids) > 0 {
		want := map[int]bool{}
		for _, p := range pids {
			want[p] = true
		}
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			fs := statFields(st)
			if len(fs) < 13 {
				continue
			}
			ppid, _ := strconv.Atoi(fs[1])
			if want[pid] || want[ppid] {
				u, _ := strconv.ParseUint(fs[11], 10, 64)
				k, _ := strconv.ParseUint(fs[12], 10, 64)
				s.cand += u + k
			}
		}
	}
	s.ours += s.cand
	s.ok = true
	return s
}

// statFields returns the fields of /proc/PID/stat after the command name:
// [0] state, [1] ppid, …, [11] utime, [12] stime.
func statFields(st []byte) []string {
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(st[i+1:]))
}

func procTimes(pid string) (uint64, bool) {
	st, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	fs := statFields(st)
	if len(fs) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(fs[11], 10, 64)
	k, err2 := strconv.ParseUint(fs[12], 10, 64)
	return u + k, err1 == nil && err2 == nil
}

// candidateCPU is the CPU time the candidate's own processes used between
// a and b, or -1 if unknown.
func candidateCPU(a, b cpuSample) time.Duration {
	if !a.ok || !b.ok || b.cand < a.cand {
		return -1
	}
	return time.Duration(b.cand-a.cand) * time.Second / clockTicks
}

// idleShare is the fraction of the machine's CPU capacity left idle
// (iowait included) between a and b, or -1 if unknown.
func idleShare(a, b cpuSample) float64 {
	if !a.ok || !b.ok || b.total <= a.total {
		return -1
	}
	return float64(b.idle-a.idle) / float64(b.total-a.total)
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// othersShare is the fraction of the machine's CPU capacity used between a
// and b by processes other than ours (steal included), or -1 if unknown.
func othersShare(a, b cpuSample) float64 {
	if !a.ok || !b.ok || b.total <= a.total {
		return -1
	}
	others := float64(b.busy-a.busy) - float64(b.ours-a.ours)
	return max(others, 0) / float64(b.total-a.total)
}
