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

// A protocol of headers and sized bodies, as LineText2's set_binary_mode
// serves: a "SIZE n" line announces n bytes that are not lines.
func ExampleLineReader_SetBinaryMode() {
	var r conn.LineReader
	var body []byte
	onBody := func(data []byte, end bool) {
		body = append(body, data...) // data is only valid during the call
		if end {
			fmt.Printf("body %q\n", body)
			body = nil
		}
	}
	onLine := func(line []byte) {
		fmt.Printf("line %q\n", line)
		var n int64
		if _, err := fmt.Sscanf(string(line), "SIZE %d", &n); err == nil {
			r.SetBinaryMode(n, onBody) // from the next byte on
		}
	}
	for _, chunk := range []string{"SIZE 7\nab\nc", "\nd", "eQUIT\n"} {
		if err := r.Feed([]byte(chunk), onLine); err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// line "SIZE 7"
	// body "ab\nc\nde"
	// line "QUIT"
}

func ExampleLineReader_SetDelimiter() {
	var r conn.LineReader
	_ = r.SetDelimiter("\r\n\r\n") // blocks separated by a blank line
	_ = r.Feed([]byte("Host: a\r\nAccept: */*\r\n\r\nnext"), func(block []byte) {
		fmt.Printf("%q\n", block)
	})
	fmt.Println("held:", r.Buffered())
	// Output:
	// "Host: a\r\nAccept: */*"
	// held: 4
}
