package loop_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ringmachine/ringmachine/loop"
)

// A file watch hears of an append, then of the file's deletion, and ends
// with Unbind.
func ExampleLoop_WatchFile() {
	dir, err := os.MkdirTemp("", "watchfile")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "log")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		fmt.Println(err)
		return
	}
	err = loop.Run(func(l *loop.Loop) {
		_, err := l.WatchFile(path, &loop.FileWatcherFuncs{
			Modified: func(w *loop.FileWatch) {
				fmt.Println("modified", filepath.Base(w.Path()))
				_ = os.Remove(w.Path())
			},
			Deleted: func(*loop.FileWatch) { fmt.Println("deleted") },
			Unbound: func(*loop.FileWatch) {
				fmt.Println("unbind")
				l.Stop()
			},
		})
		if err != nil {
			fmt.Println(err)
			l.Stop()
			return
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			_, err = f.WriteString("hello\n") // one write: one IN_MODIFY
			f.Close()
		}
		if err != nil {
			fmt.Println(err)
			l.Stop()
		}
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// modified log
	// deleted
	// unbind
}
