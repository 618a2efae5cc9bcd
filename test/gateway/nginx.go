// Package gateway runs real gateways in front of Elevate's forward-auth
// endpoint, configured from the examples in deploy/, so the examples are
// what the tests check.
package gateway

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/test/harness"
)

const (
	// nginxStartTimeout bounds the wait for a new nginx to accept
	// connections. It is ready in milliseconds, so reaching this means
	// broken, not slow.
	nginxStartTimeout = 10 * time.Second
	// nginxStopTimeout is how long SIGTERM gets before SIGKILL.
	nginxStopTimeout = 5 * time.Second
	// nginxPortAttempts: FreeAddr closes its listener before nginx binds,
	// so another process can take the port in between; a fresh port on
	// each attempt makes that race harmless.
	nginxPortAttempts = 3
)

// errPortTaken marks a start that failed only because its port was taken.
var errPortTaken = errors.New("port taken")

// NginxServer is an nginx the test owns: its own process, port, directory,
// configuration, logs and temporary files.
type NginxServer struct {
	// Addr is 127.0.0.1:port, where nginx listens.
	Addr string
	// URL is http://Addr.
	URL string

	dir  string
	out  *harness.LogBuffer // nginx's stderr and stdout
	proc *nginxProc
}

// Nginx starts nginx with site, an nginx configuration for the http {}
// block in which every {{LISTEN}} is replaced by nginx's own address and
// every other {{NAME}} by vars[NAME]. It stops nginx when t ends. It fails
// the test, never skips it, when nginx is not installed.
func Nginx(t testing.TB, site string, vars map[string]string) *NginxServer {
	t.Helper()
	bin := nginxBinary(t)
	s := &NginxServer{dir: t.TempDir(), out: &harness.LogBuffer{}}
	var err error
	for range nginxPortAttempts {
		s.Addr = harness.FreeAddr(t)
		conf, cerr := substitute(site, s.Addr, vars)
		if cerr != nil {
			t.Fatal(cerr)
		}
		if err = s.writeConfig(conf); err != nil {
			t.Fatal(err)
		}
		if s.proc, err = s.launch(bin); !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		t.Fatalf("start nginx: %v\n%s", err, s.Log())
	}
	s.URL = "http://" + s.Addr
	t.Cleanup(func() {
		switch {
		case s.proc.exited():
			t.Errorf("nginx %s exited during the test: %v\n%s", s.Addr, s.proc.err, s.Log())
			return
		default:
			s.proc.stop()
		}
		if t.Failed() {
			t.Logf("nginx output:\n%s", s.Log())
		}
	})
	return s
}

// substitute fills the placeholders of site, failing on any left over so
// a new placeholder in the example cannot go unnoticed.
func substitute(site, listen string, vars map[string]string) (string, error) {
	pairs := []string{"{{LISTEN}}", listen}
	for k, v := range vars {
		pairs = append(pairs, "{{"+k+"}}", v)
	}
	out := strings.NewReplacer(pairs...).Replace(site)
	if i := strings.Index(out, "{{"); i >= 0 {
		end := min(len(out), i+40)
		return "", fmt.Errorf("nginx configuration has a placeholder the test does not fill: %q", out[i:end])
	}
	return out, nil
}

// writeConfig writes nginx.conf, which keeps everything nginx writes in
// the test's directory, and site.conf, which it includes.
func (s *NginxServer) writeConfig(site string) error {
	if err := os.WriteFile(filepath.Join(s.dir, "site.conf"), []byte(site), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# Written by test/gateway for one test.\n")
	b.WriteString("daemon off;\nworker_processes 1;\n")
	// A master running as root hands the work to an unprivileged user,
	// who could not reach the test's private directory; keep ours.
	if os.Geteuid() == 0 {
		if u, err := user.Current(); err == nil {
			group := u.Gid
			if g, err := user.LookupGroupId(u.Gid); err == nil {
				group = g.Name
			}
			fmt.Fprintf(&b, "user %s %s;\n", u.Username, group)
		}
	}
	fmt.Fprintf(&b, "pid %s;\n", s.path("nginx.pid"))
	fmt.Fprintf(&b, "error_log %s info;\n", s.path("error.log"))
	b.WriteString("events {\n    worker_connections 128;\n}\n")
	b.WriteString("http {\n")
	fmt.Fprintf(&b, "    access_log %s;\n", s.path("access.log"))
	for _, name := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "    %s_temp_path %s;\n", name, s.path("temp", name))
	}
	fmt.Fprintf(&b, "    include %s;\n", s.path("site.conf"))
	b.WriteString("}\n")
	if err := os.MkdirAll(s.path("temp"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(s.path("nginx.conf"), []byte(b.String()), 0o644)
}

func (s *NginxServer) path(parts ...string) string {
	return filepath.Join(append([]string{s.dir}, parts...)...)
}

// launch starts nginx and waits until that very process listens on Addr.
// On error nothing is left running.
func (s *NginxServer) launch(bin string) (*nginxProc, error) {
	_ = os.Remove(s.path("nginx.pid"))
	errorLog := s.path("error.log")
	from := fileSize(errorLog)
	// -p keeps relative paths in the directory; -e opens the error log
	// there before the configuration is read (nginx 1.19.5 and later).
	cmd := exec.Command(bin, "-p", s.dir+"/", "-c", s.path("nginx.conf"), "-e", errorLog)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = s.out, s.out
	// Its own process group, so a worker cannot outlive a killed master.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	outFrom := s.out.Len()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &nginxProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	for deadline := time.Now().Add(nginxStartTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if p.exited() {
			if strings.Contains(s.out.Since(outFrom)+readFrom(errorLog, from), "Address already in use") {
				return nil, fmt.Errorf("%s: %w", s.Addr, errPortTaken)
			}
			return nil, fmt.Errorf("nginx exited before listening: %v", p.err)
		}
		// nginx writes its pid file once its sockets are bound; whoever
		// took the port between FreeAddr and our bind would accept the
		// connection too, so the pid must be ours.
		pid, err := os.ReadFile(s.path("nginx.pid"))
		if err != nil || strings.TrimSpace(string(pid)) != strconv.Itoa(cmd.Process.Pid) {
			continue
		}
		conn, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err != nil {
			continue
		}
		conn.Close()
		return p, nil
	}
	p.stop()
	return nil, fmt.Errorf("nginx did not listen on %s within %s", s.Addr, nginxStartTimeout)
}

// Log is nginx's output, error log and access log, for failure messages.
func (s *NginxServer) Log() string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- nginx %s output ---\n%s", s.Addr, s.out)
	for _, name := range []string{"error.log", "access.log", "site.conf"} {
		fmt.Fprintf(&b, "--- %s ---\n%s", name, readFrom(s.path(name), 0))
	}
	return b.String()
}

// nginxBinary finds nginx: $NGINX, then PATH, then where packages put it
// (/usr/sbin is not on every user's PATH). Never a skip: CI must notice
// when the gateway tests stop running.
func nginxBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("NGINX"); p != "" {
		return p
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if info, err := os.Stat(p); err == nil && !info.IsDir() {
			return p
		}
	}
	t.Fatal("nginx is not installed (not on PATH, not in /usr/sbin, $NGINX unset): run `make nginx` " +
		"(or .ci/ensure-nginx) to install it; the gateway tests start their own nginx and never skip")
	return ""
}

// nginxProc is a running nginx master.
type nginxProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the master has exited
	err  error         // cmd.Wait's result, set before done closes
}

func (p *nginxProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks nginx to exit (SIGTERM: fast shutdown) and kills its process
// group if it does not.
func (p *nginxProc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(nginxStopTimeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func fileSize(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}

// readFrom is a file's content after its first n bytes, or "" when there
// is none.
func readFrom(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < n {
		return ""
	}
	return string(b[n:])
}
