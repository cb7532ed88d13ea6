package reload

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch reloads after every change in the flow directory (subdirectories
// included, new ones too), once the directory has been quiet for
// Options.Debounce, until ctx ends. The directory is watched when Watch
// returns, so a change made after it is never missed; the reloads run in
// the background, and done is closed when the watch has stopped. A
// refused set is logged and the watch goes on: fixing the file triggers
// the next attempt.
func (r *Reloader) Watch(ctx context.Context) (done <-chan struct{}, err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := addTree(w, r.opt.Dir); err != nil {
		w.Close()
		return nil, err
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		defer w.Close()
		r.watch(ctx, w)
	}()
	return ch, nil
}

func (r *Reloader) watch(ctx context.Context, w *fsnotify.Watcher) {
	var fire <-chan time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					_ = addTree(w, ev.Name)
				}
			}
			timer.Reset(r.opt.Debounce)
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			r.log.Warn("reload: watching the flow directory", "err", err)
		case <-fire:
			fire = nil
			r.reloadLogged(ctx, "change in the flow directory")
		}
	}
}

// OnSignal reloads every time the process receives one of sigs (default
// SIGHUP), until ctx ends.
func (r *Reloader) OnSignal(ctx context.Context, sigs ...os.Signal) {
	if len(sigs) == 0 {
		sigs = []os.Signal{syscall.SIGHUP}
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			r.reloadLogged(ctx, "signal")
		}
	}
}

func (r *Reloader) reloadLogged(ctx context.Context, why string) {
	changed, err := r.Reload(ctx)
	switch {
	case errors.Is(err, ErrClosed):
	case err != nil: // logged by Reload, error by error
	case !changed:
		r.log.Debug("reload: the flow directory did not change", "trigger", why)
	}
}

// addTree watches dir and every directory below it (fsnotify is not
// recursive).
func addTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			return w.Add(p)
		}
		return nil
	})
}
