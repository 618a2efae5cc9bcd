package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// proc is a program the bench started; every one is stopped when the
// bench ends, however it ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string // the file its output goes to, "" for none
}

// procs are the programs running now.
type procs struct {
	mu     sync.Mutex
	list   []*proc
	closed bool // after stopAll: nothing more starts
	// logDir keeps each program's output in a file there; empty sends it
	// to /dev/null (a decision log of tens of megabytes a second is no use
	// and costs disk).
	logDir string
}

func (ps *procs) start(name, bin string, args ...string) (*proc, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return nil, fmt.Errorf("start %s: the bench is stopping", name)
	}
	cmd := exec.Command(bin, args...)
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	out, err := ps.output(name)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so a Ctrl-C at the terminal reaches the bench
	// only, which then stops every program in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.log = out.Name()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	ps.list = append(ps.list, p)
	return p, nil
}

func (ps *procs) output(name string) (*os.File, error) {
	if ps.logDir == "" {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	if err := os.MkdirAll(ps.logDir, 0o755); err != nil {
		return nil, err
	}
	return os.Create(filepath.Join(ps.logDir, name+".log"))
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failure describes a program that stopped on its own.
func (p *proc) failure() error {
	hint := "rerun with -logs to keep its output"
	if p.log != os.DevNull {
		hint = "its output is in " + p.log
	}
	return fmt.Errorf("%s exited: %v (%s)", p.name, p.err, hint)
}

// stop sends SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stop ends p and forgets it.
func (ps *procs) stop(p *proc) {
	p.stop()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i, q := range ps.list {
		if q == p {
			ps.list = append(ps.list[:i], ps.list[i+1:]...)
			break
		}
	}
}

// stopAll ends every program still running, newest first.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list, ps.closed = nil, true
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop()
	}
}

// freeAddr is a loopback host:port nothing listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitHTTP polls url until it answers 200, p exits, or timeout passes.
func waitHTTP(p *proc, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if p.exited() {
			return p.failure()
		}
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("%s did not answer 200 on %s within %s", p.name, url, timeout)
}

// redisServer is a redis-server the bench started, without persistence.
type redisServer struct {
	*proc
	addr, url string
	client    *goredis.Client
}

func (ps *procs) redis(name, dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server is not on PATH: run `make redis` (or apt-get install redis-server)")
	}
	for attempt := 0; ; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		_, port, _ := net.SplitHostPort(addr)
		wd := filepath.Join(dir, name)
		if err := os.MkdirAll(wd, 0o755); err != nil {
			return nil, err
		}
		p, err := ps.start(name, bin, "--port", port, "--bind", "127.0.0.1", "--dir", wd,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "")
		if err != nil {
			return nil, err
		}
		s := &redisServer{proc: p, addr: addr, url: "redis://" + addr + "/0",
			client: goredis.NewClient(&goredis.Options{Addr: addr, ReadTimeout: time.Minute, WriteTimeout: time.Minute})}
		if err := s.wait(); err != nil {
			s.client.Close()
			ps.stop(p)
			if attempt < 2 { // the port was taken between freeAddr and the bind
				continue
			}
			return nil, err
		}
		return s, nil
	}
}

// wait makes sure the server answering is the one started: whoever took
// the port in between would answer PING too.
func (s *redisServer) wait() error {
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s.exited() {
			return s.failure()
		}
		info, err := s.client.Info(ctx, "server").Result()
		if err != nil {
			continue
		}
		if field(info, "process_id") != strconv.Itoa(s.cmd.Process.Pid) {
			return fmt.Errorf("%s answered by another Redis", s.addr)
		}
		return nil
	}
	return fmt.Errorf("redis-server did not answer on %s", s.addr)
}

// version is the server's redis_version.
func (s *redisServer) version() string {
	info, _ := s.client.Info(context.Background(), "server").Result()
	return field(info, "redis_version")
}

// usage is MEMORY USAGE of key, every element counted; 0 when it is missing.
func (s *redisServer) usage(key string) int64 {
	return s.client.MemoryUsage(context.Background(), key, 0).Val()
}
