package audit

import (
	"context"
	"slices"
	"time"
)

const (
	// maxBatch caps the events one script run appends, so a burst does not
	// become one huge script that blocks Redis for everyone else.
	maxBatch = 256
	// batchTimeout bounds a batch's run, retries included. The batch does
	// not run under any caller's context, so one caller giving up cannot
	// cut short a batch that holds others' events; each caller in it waits
	// for the outcome rather than report a failure that was in fact stored.
	batchTimeout = 5 * time.Second
)

// The states of a pending append.
const (
	queued  = iota // in the queue, may still be withdrawn
	leading        // in the queue, designated to run the next batch
	taken          // out of the queue: in a batch, withdrawn, or failed
)

// pending is one Append waiting for its event to be stored.
type pending struct {
	ctx context.Context
	e   Event
	// state is guarded by RedisSink.qmu.
	state int
	// lead is closed when this caller is to run the next batch.
	lead chan struct{}
	// done is closed once the outcome is known: err, or else out, the
	// event as stored.
	done chan struct{}
	out  Event
	err  error
}

// Append queues e and waits until a batch holding it is stored. Concurrent
// appends of one sink share a script run (group commit): one caller at a
// time, the leader, takes up to maxBatch queued events, appends them and
// hands the lead to the oldest caller still queued, so there is no
// goroutine of the sink's own to start or stop.
func (r *RedisSink) Append(ctx context.Context, e Event) (Event, error) {
	p := &pending{ctx: ctx, e: e, lead: make(chan struct{}), done: make(chan struct{})}
	r.qmu.Lock()
	r.queue = append(r.queue, p)
	if !r.busy {
		r.busy = true
		p.state = leading
		close(p.lead)
	}
	r.qmu.Unlock()

	cancelled, lead := ctx.Done(), p.lead
	for {
		select {
		case <-p.done:
			if p.err != nil {
				return Event{}, p.err
			}
			return p.out, nil
		case <-lead:
			lead = nil
			r.runBatch()
		case <-cancelled:
			cancelled = nil
			if r.withdraw(p) {
				return Event{}, ctx.Err()
			}
			// Taken into a batch, or about to lead one: wait it out.
		}
	}
}

// withdraw takes p out of the queue if no batch took it yet.
func (r *RedisSink) withdraw(p *pending) bool {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	if p.state != queued {
		return false
	}
	p.state = taken
	r.queue = slices.DeleteFunc(r.queue, func(q *pending) bool { return q == p })
	return true
}

// runBatch is the leader's turn: it appends the queued events, oldest first
// (its own among them), then hands the lead on.
func (r *RedisSink) runBatch() {
	r.qmu.Lock()
	n := min(len(r.queue), maxBatch)
	batch := make([]*pending, 0, n)
	for _, p := range r.queue[:n] {
		p.state = taken
		// A caller whose context ended is answered now and its event
		// dropped: it was never taken, so it must never be stored.
		if err := p.ctx.Err(); err != nil {
			p.err = err
			close(p.done)
			continue
		}
		batch = append(batch, p)
	}
	r.queue = slices.Delete(r.queue, 0, n)
	r.qmu.Unlock()

	if len(batch) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
		err := r.appendBatch(ctx, batch)
		cancel()
		for _, p := range batch {
			if p.err == nil && err != nil {
				p.err = err
			}
			close(p.done)
		}
	}

	r.qmu.Lock()
	if len(r.queue) > 0 {
		next := r.queue[0]
		next.state = leading
		close(next.lead)
	} else {
		r.busy = false
	}
	r.qmu.Unlock()
}
