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

func ExampleDeferrable() {
	_ = loop.Run(func(l *loop.Loop) {
		d := loop.NewDeferrable[string](l)
		d.Callback(func(who string) { fmt.Println("Go", who, "go") }).
			Errback(func(err error) { fmt.Println("failed:", err) })
		_ = d.Timeout(time.Second, nil) // fails d unless it succeeds first
		_, _ = l.AddTimer(time.Millisecond, func() {
			d.Succeed("SpeedRacer") // runs the callbacks, cancels the timeout
			l.Stop()
		})
	})
	// Output: Go SpeedRacer go
}

func ExampleSpawn() {
	_ = loop.Run(func(l *loop.Loop) {
		s := loop.Spawn(l, func(msg string) {
			fmt.Println("Received", msg)
			if msg == "bye" {
				l.Stop()
			}
		})
		s.Notify("hello") // runs in a later tick, never inside Notify
		fmt.Println("notified")
		go s.Notify("bye") // safe from any goroutine
	})
	// Output:
	// notified
	// Received hello
	// Received bye
}

func ExampleQueue() {
	_ = loop.Run(func(l *loop.Loop) {
		q := loop.NewQueue[string](l)
		q.Pop(func(job string) { fmt.Println("first:", job) }) // waits
		q.Pop(func(job string) { fmt.Println("second:", job); l.Stop() })
		go q.Push("a", "b") // safe from any goroutine
	})
	// Output:
	// first: a
	// second: b
}

func ExampleChannel() {
	_ = loop.Run(func(l *loop.Loop) {
		c := loop.NewChannel[string](l)
		c.Subscribe(func(m string) { fmt.Println("A got", m) })
		id := c.Subscribe(func(m string) { fmt.Println("B got", m) })
		c.Pop(func(m string) { fmt.Println("once got", m) })
		c.Push("news")
		_ = l.NextTick(func() {
			c.Unsubscribe(id)
			c.Push("more")
			_ = l.NextTick(l.Stop)
		})
	})
	// Output:
	// A got news
	// B got news
	// once got news
	// A got more
}

func ExampleIterator() {
	_ = loop.Run(func(l *loop.Loop) {
		it := loop.NewIterator(l, []string{"a", "b", "c"}, 2)
		_ = it.Each(func(item string, s *loop.Step) {
			fmt.Println("handling", item)
			s.Next() // may be called later, from another callback
		}, func() {
			fmt.Println("all done")
			l.Stop()
		})
	})
	// Output:
	// handling a
	// handling b
	// handling c
	// all done
}

func ExampleMap() {
	_ = loop.Run(func(l *loop.Loop) {
		it := loop.NewIterator(l, []int{1, 2, 3}, 3)
		_ = loop.Map(it, func(n int, s *loop.MapStep[int]) {
			// Finish in reverse order: results keep the items' order.
			_, _ = l.AddTimer(time.Duration(4-n)*time.Millisecond, func() { s.Return(n * n) })
		}, func(squares []int) {
			fmt.Println(squares)
			l.Stop()
		})
	})
	// Output: [1 4 9]
}

func ExampleInject() {
	_ = loop.Run(func(l *loop.Loop) {
		it := loop.NewIterator(l, []int{1, 2, 3, 4}, 1)
		_ = loop.Inject(it, 0, func(sum, n int, s *loop.InjectStep[int]) {
			s.Return(sum + n)
		}, func(sum int) {
			fmt.Println("sum:", sum)
			l.Stop()
		})
	})
	// Output: sum: 10
}

func ExampleLoop_TickLoop() {
	_ = loop.Run(func(l *loop.Loop) {
		n := 0
		tl := l.TickLoop(func() loop.TickAction {
			n++
			fmt.Println("tick", n)
			if n == 3 {
				return loop.TickStop
			}
			return loop.TickContinue
		})
		tl.OnStop(func() { fmt.Println("stopped"); l.Stop() })
	})
	// Output:
	// tick 1
	// tick 2
	// tick 3
	// stopped
}
