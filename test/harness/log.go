package harness

import "sync"

// LogBuffer collects a process's output. exec copies into it from its own
// goroutine while the test reads it, hence the lock.
type LogBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *LogBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.b)
}

// Since is the output written after the first n bytes.
func (l *LogBuffer) Since(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b[n:])
}

func (l *LogBuffer) String() string { return l.Since(0) }
