package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// redisStartTimeout bounds the wait for a new redis-server to answer.
	// It is ready in milliseconds, so reaching this means broken, not slow.
	redisStartTimeout = 10 * time.Second
	// redisStopTimeout is how long SIGTERM gets before SIGKILL.
	redisStopTimeout = 5 * time.Second
	// redisPortAttempts: FreeAddr closes its listener before redis binds, so
	// another process can take the port in between. A fresh port on each
	// attempt makes that race harmless.
	redisPortAttempts = 3
	// clusterBusOffset is how far above its client port a cluster node
	// listens for the cluster bus; Redis fixes it.
	clusterBusOffset = 10000
)

// errPortTaken marks a start that failed only because its port (or a
// cluster node's bus port) was taken, so another port may well work.
var errPortTaken = errors.New("port taken")

// RedisServer is a standalone redis-server the test owns: its own process,
// port and directory, no persistence. Call its methods from the test's
// goroutine.
type RedisServer struct {
	// Addr is 127.0.0.1:port; it survives Stop and Start.
	Addr string
	// URL is redis://Addr/0, for code that is configured with a URL.
	URL string

	bin, dir string
	port     int
	log      *LogBuffer
	proc     *redisProc // nil while stopped
}

// Redis starts a redis-server for t and stops it when t ends. It fails the
// test, never skips it, when redis-server is not installed: a Redis test
// that silently does not run is worse than one that fails.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	s := &RedisServer{bin: redisTool(t, "redis-server"), dir: t.TempDir(), log: &LogBuffer{}}
	var err error
	for range redisPortAttempts {
		s.port = freePort(t)
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		if s.proc, err = launchRedis(s.bin, s.dir, s.port, nil, s.log); !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		t.Fatalf("start redis-server: %v\n%s", err, s.Log())
	}
	s.URL = "redis://" + s.Addr + "/0"
	t.Cleanup(func() {
		p := s.proc
		s.proc = nil
		checkStopped(t, "redis-server "+s.Addr, p, s.Log)
	})
	return s
}

// Client is a client of s, closed when t ends.
func (s *RedisServer) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// Stop shuts the server down, so the code under test sees Redis go away.
// Stopping a stopped server does nothing.
func (s *RedisServer) Stop(t testing.TB) {
	t.Helper()
	if s.proc != nil {
		s.proc.stop()
		s.proc = nil
	}
}

// Start brings a stopped server back on the same address, as a restarted
// Redis would come back. Without persistence it comes back empty.
func (s *RedisServer) Start(t testing.TB) {
	t.Helper()
	if s.proc != nil {
		t.Fatalf("redis-server %s: Start while it is running", s.Addr)
	}
	// No retry here: the port is the point, so losing it fails the test.
	p, err := launchRedis(s.bin, s.dir, s.port, nil, s.log)
	if err != nil {
		t.Fatalf("restart redis-server on %s: %v\n%s", s.Addr, err, s.Log())
	}
	s.proc = p
}

// Log is everything the server has written so far, over every start, for
// failure messages.
func (s *RedisServer) Log() string {
	return "--- redis-server " + s.Addr + " ---\n" + s.log.String()
}

// RedisClusterServer is a Redis Cluster of three masters and no replicas,
// the smallest cluster Redis accepts, on loopback ports the test owns.
type RedisClusterServer struct {
	// Addrs are the masters' host:port, in start order.
	Addrs []string
	// URL names all three masters in the form redis.ParseClusterURL reads.
	URL string

	logs   []*LogBuffer
	create *LogBuffer // output of redis-cli --cluster create
}

// RedisCluster starts a three-master Redis Cluster for t, waits until every
// node reports all 16384 slots served, and stops it when t ends. Like
// Redis, it fails the test when redis-server or redis-cli is missing.
func RedisCluster(t testing.TB) *RedisClusterServer {
	t.Helper()
	bin := redisTool(t, "redis-server")
	cli := redisTool(t, "redis-cli")
	c := &RedisClusterServer{create: &LogBuffer{}}
	args := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"}
	for range 3 {
		log := &LogBuffer{}
		c.logs = append(c.logs, log)
		var (
			p    *redisProc
			port int
			err  error
		)
		for range redisPortAttempts {
			port = clusterPort(t)
			// A fresh directory each attempt: a node writes nodes.conf,
			// and so its identity, even when it then fails to bind.
			if p, err = launchRedis(bin, t.TempDir(), port, args, log); !errors.Is(err, errPortTaken) {
				break
			}
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err != nil {
			t.Fatalf("start cluster node %s: %v\n%s", addr, err, c.Log())
		}
		c.Addrs = append(c.Addrs, addr)
		t.Cleanup(func() { checkStopped(t, "cluster node "+addr, p, c.Log) })
	}
	c.URL = "redis://" + c.Addrs[0] + "?addr=" + strings.Join(c.Addrs[1:], "&addr=")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, append(append([]string{"--cluster", "create"}, c.Addrs...),
		"--cluster-replicas", "0", "--cluster-yes")...)
	cmd.Stdout, cmd.Stderr = c.create, c.create
	if err := cmd.Run(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, c.Log())
	}

	// redis-cli returns once the nodes agree on the layout; each node still
	// has to see every slot served before it answers commands, and a client
	// that arrives earlier gets CLUSTERDOWN.
	for _, addr := range c.Addrs {
		if err := waitClusterOK(addr, redisStartTimeout); err != nil {
			t.Fatalf("cluster node %s: %v\n%s", addr, err, c.Log())
		}
	}
	return c
}

// Client is a cluster client of c, closed when t ends.
func (c *RedisClusterServer) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { cc.Close() })
	return cc
}

// Log is every node's output and redis-cli's, for failure messages.
func (c *RedisClusterServer) Log() string {
	var b strings.Builder
	for i, log := range c.logs {
		name := "(not started)"
		if i < len(c.Addrs) {
			name = c.Addrs[i]
		}
		fmt.Fprintf(&b, "--- cluster node %s ---\n%s", name, log)
	}
	fmt.Fprintf(&b, "--- redis-cli --cluster create ---\n%s", c.create)
	return b.String()
}

// redisTool is the path of a Redis program. Never a skip: CI must notice
// when the Redis tests stop running.
func redisTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not on PATH: run `make redis` (or .ci/ensure-redis) to install it; "+
			"Redis tests start their own servers and never skip", name)
	}
	return path
}

// freePort is a loopback port nothing listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	_, port, err := net.SplitHostPort(FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// clusterPort is a free port whose bus port, port+10000, is a valid port
// and free too.
func clusterPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		port := freePort(t)
		if port+clusterBusOffset > 65535 {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+clusterBusOffset)))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("no free port with a free cluster bus port 10000 above it")
	return 0
}

// launchRedis starts redis-server on 127.0.0.1:port in dir and waits until
// that very process answers. On error nothing is left running.
func launchRedis(bin, dir string, port int, extra []string, log *LogBuffer) (*redisProc, error) {
	args := append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--protected-mode", "yes",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", "", // stdout, which log captures
	}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	from := log.Len()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &redisProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(redisStartTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if p.exited() {
			if strings.Contains(log.Since(from), "Address already in use") {
				return nil, fmt.Errorf("%s: %w", addr, errPortTaken)
			}
			return nil, fmt.Errorf("redis-server exited before answering: %v", p.err)
		}
		// Ask for the pid rather than PING: whoever took the port between
		// FreeAddr and our bind would answer PING too, and the test must
		// never talk to a Redis it did not start.
		info, err := redisCommand(addr, "INFO", "server")
		if err != nil {
			continue
		}
		if infoField(info, "process_id") != strconv.Itoa(cmd.Process.Pid) {
			p.stop()
			return nil, fmt.Errorf("%s answered by another Redis: %w", addr, errPortTaken)
		}
		return p, nil
	}
	p.stop()
	return nil, fmt.Errorf("redis-server did not answer on %s within %s", addr, redisStartTimeout)
}

// waitClusterOK polls a cluster node until it serves all slots.
func waitClusterOK(addr string, timeout time.Duration) error {
	var info string
	var err error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		info, err = redisCommand(addr, "CLUSTER", "INFO")
		if err == nil && infoField(info, "cluster_state") == "ok" &&
			infoField(info, "cluster_slots_assigned") == "16384" &&
			infoField(info, "cluster_slots_ok") == "16384" {
			return nil
		}
	}
	return fmt.Errorf("cluster not ok after %s (last error %v):\n%s", timeout, err, info)
}

// checkStopped stops p at cleanup, failing the test when p had died on its
// own, and prints the log when the test failed: a Redis that crashed is the
// likeliest explanation and otherwise lost.
func checkStopped(t testing.TB, name string, p *redisProc, log func() string) {
	switch {
	case p == nil: // stopped by the test
	case p.exited():
		t.Errorf("%s exited during the test: %v\n%s", name, p.err, log())
		return
	default:
		p.stop()
	}
	if t.Failed() {
		t.Logf("%s output:\n%s", name, log())
	}
}

// redisProc is a running redis-server.
type redisProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, set before done closes
}

func (p *redisProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks Redis to shut down and kills it if it does not.
func (p *redisProc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(redisStopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// redisCommand sends one command over a fresh connection and returns a
// simple or bulk string reply. It is for the harness's own probes, which
// must not depend on the client under test.
func redisCommand(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	req := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		req += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(req)); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", errors.New(line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("unexpected reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// infoField is the value of name in an INFO-style "name:value" reply.
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}
