package loop_test

import (
	"fmt"
	"time"

	"github.com/ringmachine/ringmachine/loop"
)

func Example() {
	err := loop.Run(func(l *loop.Loop) {
		_ = l.NextTick(func() { fmt.Println("tick") })
		_, _ = l.AddTimer(0, func() { fmt.Println("timer") })
		fmt.Println("run")
		_, _ = l.AddTimer(10*time.Millisecond, l.Stop)
	})
	fmt.Println("stopped:", err)
	// Output:
	// run
	// tick
	// timer
	// stopped: <nil>
}

func ExampleLoop_AddPeriodicTimer() {
	_ = loop.Run(func(l *loop.Loop) {
		n := 0
		var p *loop.PeriodicTimer
		p, _ = l.AddPeriodicTimer(time.Millisecond, func() {
			n++
			fmt.Println("Tick", n)
			if n == 3 {
				p.Cancel()
				l.Stop()
			}
		})
	})
	// Output:
	// Tick 1
	// Tick 2
	// Tick 3
}

func ExampleDefer() {
	_ = loop.Run(func(l *loop.Loop) {
		_ = loop.Defer(l, func() int { return 2 + 2 }, func(n int) {
			fmt.Println("2 + 2 ==", n)
			l.Stop()
		})
	})
	// Output: 2 + 2 == 4
}

func ExampleLoop_NextTick() {
	_ = loop.Run(func(l *loop.Loop) {
		done := make(chan struct{})
		go func() {
			// Safe from any goroutine: wakes the loop.
			_ = l.NextTick(func() { fmt.Println("from another goroutine"); l.Stop() })
			close(done)
		}()
		_ = l.AddShutdownHook(func() { <-done })
	})
	// Output: from another goroutine
}
