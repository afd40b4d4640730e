//go:build unix

// Command floor measures the fan-out latency a bare Go program gets on this
// machine, as a yardstick for the hub's figures from the load tool: every
// 1/-rate seconds it writes one -size byte message to each of -n loopback TCP
// connections (a goroutine per write, as the hub's writers do), and a reader
// process (a goroutine per connection, as the load tool's clients) takes the
// time of each arrival. No WebSocket, no SignalR, no hub: what is left is the
// cost of the sockets and the scheduler, which the hub cannot go below.
//
//	go run ./testclient/cmd/bench/floor -n 10000 -rate 5 -rounds 75
//
// It listens on 127.0.0.1 only and needs about -n open files in each of its
// two processes.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) == 6 && os.Args[1] == "-reader" {
		n, _ := strconv.Atoi(os.Args[3])
		total, _ := strconv.Atoi(os.Args[4])
		size, _ := strconv.Atoi(os.Args[5])
		if err := reader(os.Args[2], n, total, size); err != nil {
			fmt.Fprintln(os.Stderr, "floor reader:", err)
			os.Exit(1)
		}
		return
	}
	n := flag.Int("n", 1000, "connections")
	rate := flag.Float64("rate", 20, "messages per second to every connection")
	rounds := flag.Int("rounds", 300, "messages to every connection")
	size := flag.Int("size", 250, "message size in bytes (at least 8: the send time)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "floor: the fan-out latency of bare loopback sockets on this machine (see the package doc).\n\nUsage:\n  go run ./testclient/cmd/bench/floor [flags]\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *n < 1 || *rate <= 0 || *rounds < 1 || *size < 8 {
		fmt.Fprintln(os.Stderr, "floor: -n, -rate and -rounds must be positive, -size at least 8")
		os.Exit(2)
	}
	if err := writer(*n, *rate, *rounds, *size); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func writer(n int, rate float64, rounds, size int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-reader", ln.Addr().String(), strconv.Itoa(n), strconv.Itoa(n*rounds), strconv.Itoa(size))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	conns := make([]net.Conn, n)
	for i := range conns {
		if conns[i], err = ln.Accept(); err != nil {
			_ = cmd.Process.Kill()
			return err
		}
	}
	time.Sleep(time.Second) // let the reader settle
	c0 := cpuTime()
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	for r := 0; r < rounds; r++ {
		<-t.C
		msg := make([]byte, size)
		binary.LittleEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
		for _, c := range conns {
			go func(c net.Conn) {
				_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				_, _ = c.Write(msg)
			}(c)
		}
	}
	fmt.Printf("writer: %.2f µs CPU per message\n", float64((cpuTime()-c0).Nanoseconds())/1e3/float64(n*rounds))
	return cmd.Wait()
}

func reader(addr string, n, total, size int) error {
	var mu sync.Mutex
	lat := make([]time.Duration, 0, total)
	done := make(chan struct{})
	c0 := cpuTime()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		go func() {
			b := make([]byte, 4096)
			var hdr [8]byte
			pos := 0 // bytes of the current message seen
			for {
				k, err := c.Read(b)
				if err != nil {
					return
				}
				now := time.Now().UnixNano()
				for _, x := range b[:k] {
					if pos < 8 {
						hdr[pos] = x
					}
					pos++
					if pos == 8 { // the send time is complete: time the message
						d := time.Duration(now - int64(binary.LittleEndian.Uint64(hdr[:])))
						mu.Lock()
						if len(lat) < total {
							lat = append(lat, d)
							if len(lat) == total {
								close(done)
							}
						}
						mu.Unlock()
					}
					if pos == size {
						pos = 0
					}
				}
			}
		}()
	}
	select {
	case <-done:
	case <-time.After(time.Duration(total/n+60) * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		return fmt.Errorf("nothing received")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	fmt.Printf("reader: %d of %d messages: p50 %v  p90 %v  p99 %v  max %v; %.2f µs CPU per message\n",
		len(lat), total, q(.5).Round(10*time.Microsecond), q(.9).Round(10*time.Microsecond), q(.99).Round(10*time.Microsecond),
		lat[len(lat)-1].Round(10*time.Microsecond), float64((cpuTime()-c0).Nanoseconds())/1e3/float64(len(lat)))
	return nil
}
