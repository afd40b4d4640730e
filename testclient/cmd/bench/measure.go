package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// hubSample is what the tool knows about the hub process at one moment. A
// field is negative when it could not be read.
type hubSample struct {
	RSS        int64   // bytes: /proc/PID/status VmRSS, else process_resident_memory_bytes
	CPU        float64 // seconds of user+system time: /proc/PID/stat, else process_cpu_seconds_total
	HeapInuse  int64   // go_memstats_heap_inuse_bytes
	StackInuse int64   // go_memstats_stack_inuse_bytes
	Goroutines int64   // go_goroutines
	Dropped    int64   // notifyhub_notifications_total{outcome="dropped"}
	SlowCloses int64   // notifyhub_slow_consumer_closes_total
	Writes     int64   // write syscalls: /proc/PID/io syscw (with -pid only)
}

// prober reads the hub's process figures from /proc (when the hub runs on
// this machine and its pid is known) and its Prometheus metrics.
type prober struct {
	pid        int    // 0: no /proc
	metricsURL string // "": no scraping
	http       *http.Client
}

func (p *prober) sample(ctx context.Context) hubSample {
	s := hubSample{RSS: -1, CPU: -1, HeapInuse: -1, StackInuse: -1, Goroutines: -1, Dropped: -1, SlowCloses: -1, Writes: -1}
	if p.metricsURL != "" {
		if m, err := p.scrape(ctx); err == nil {
			get := func(name string) int64 {
				if v, ok := m[name]; ok {
					return int64(v)
				}
				return -1
			}
			s.HeapInuse = get("go_memstats_heap_inuse_bytes")
			s.StackInuse = get("go_memstats_stack_inuse_bytes")
			s.Goroutines = get("go_goroutines")
			s.Dropped = get(`notifyhub_notifications_total{outcome="dropped"}`)
			s.SlowCloses = get("notifyhub_slow_consumer_closes_total")
			s.RSS = get("process_resident_memory_bytes")
			if v, ok := m["process_cpu_seconds_total"]; ok {
				s.CPU = v
			}
		}
	}
	if p.pid > 0 {
		if rss, err := procRSS(p.pid); err == nil {
			s.RSS = rss
		}
		if cpu, err := procCPU(p.pid); err == nil {
			s.CPU = cpu
		}
		if w, err := procWrites(p.pid); err == nil {
			s.Writes = w
		}
	}
	return s
}

// scrape fetches the metrics page and returns the samples by series name
// (with labels as written, e.g. `x_total{outcome="dropped"}`).
func (p *prober) scrape(ctx context.Context) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.metricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: HTTP %d", resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format, enough for untyped lookups.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			continue
		}
		name, val := line[:i], line[i+1:]
		if j := strings.LastIndexByte(name, ' '); j > 0 && !strings.Contains(name[j:], "}") {
			name, val = name[:j], name[j+1:] // "name value timestamp"
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		out[name] = v
	}
	return out, sc.Err()
}

// procRSS returns VmRSS of pid in bytes.
func procRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(rest))
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					return 0, err
				}
				return kb << 10, nil
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// procCPU returns utime+stime of pid in seconds.
func procCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return float64(ut+st) / clockTicks, nil
}

// procWrites returns the write syscalls pid has made (syscw of
// /proc/PID/io): with the deliveries, it tells how well the hub coalesces
// queued frames into one socket write.
func procWrites(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "syscw:"); ok {
			return strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/io: no syscw", pid)
}
