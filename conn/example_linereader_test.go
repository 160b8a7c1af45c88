package conn_test

import (
	"fmt"

	"github.com/ringmachine/ringmachine/conn"
)

func ExampleLineReader() {
	var r conn.LineReader
	// Chunks as ReceiveData might deliver them: lines split anywhere.
	for _, chunk := range []string{"HELO exa", "mple.org\r\nMAIL FROM:<a@b>\r", "\nDA", "TA\r\n"} {
		err := r.Feed([]byte(chunk), func(line []byte) {
			fmt.Printf("%q\n", line)
		})
		if err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println("buffered:", r.Buffered())
	// Output:
	// "HELO example.org"
	// "MAIL FROM:<a@b>"
	// "DATA"
	// buffered: 0
}
