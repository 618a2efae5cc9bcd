package policy

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settle is how long the watcher waits after the last file event before it
// reloads, so an editor's or a deploy's burst of writes makes one reload.
const settle = 100 * time.Millisecond

// Watch reloads the policy whenever a file under the source's paths changes,
// until ctx ends. A reload that fails to compile is logged and counted
// (Reload) and the last good policy keeps serving. Built-in policies (Source.FS) never change, so Watch
// returns at once for them, as it does when the policy comes from bundles.
func (e *Engine) Watch(ctx context.Context) error {
	if e.opts.Source.FS != nil || e.opts.Bundles {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch policies: %w", err)
	}
	defer w.Close()
	for _, p := range e.opts.Source.Paths {
		if err := watchTree(w, p); err != nil {
			return err
		}
	}

	timer := time.NewTimer(settle)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) {
				// New directories under a watched tree are watched too.
				if info, err := os.Stat(ev.Name); err == nil && info.IsDir() {
					_ = watchTree(w, ev.Name)
				}
			}
			timer.Reset(settle)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			e.log.WithError(err).Warn("policy watcher error")
		case <-timer.C:
			// Reload logs and counts a failure itself.
			_ = e.Reload(ctx)
		}
	}
}

// watchTree watches a directory and every directory below it; for a file it
// watches the directory holding it, since editors and deploy tools replace
// files by renaming, which a watch on the file itself would lose.
func watchTree(w *fsnotify.Watcher, root string) error {
	info, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("watch %s: %w", root, err)
	}
	if !info.IsDir() {
		return w.Add(filepath.Dir(root))
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if err := w.Add(p); err != nil {
				return fmt.Errorf("watch %s: %w", p, err)
			}
		}
		return nil
	})
}
