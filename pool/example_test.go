package pool_test

import (
	"fmt"

	"github.com/ringmachine/ringmachine/pool"
)

func Example() {
	// The loop's side: completions posted by workers, run by one goroutine.
	completions := make(chan func(), 16)
	p, err := pool.New(pool.Options{
		Workers: 4,
		Post:    func(done func()) { completions <- done },
		OnPanic: func(v any, _ []byte) func() {
			return func() { fmt.Println("recovered:", v) }
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	_ = p.Submit(func() func() {
		sum := 2 + 2 // the blocking operation
		return func() { fmt.Println("2 + 2 ==", sum) }
	})
	(<-completions)()

	_ = p.Submit(func() func() { panic("op failed") })
	(<-completions)()

	_ = p.Close()
	fmt.Println(p.Submit(func() func() { return nil }))
	// Output:
	// 2 + 2 == 4
	// recovered: op failed
	// pool: closed
}
