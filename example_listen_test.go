package reactor_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"

	"github.com/muxkit/reactor"
)

// ExampleListen serves net/http over a listener whose connections are
// driven by reactor event loops instead of Go's runtime netpoller; the
// http.Server needs no change.
func ExampleListen() {
	ln, err := reactor.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s %s", r.Method, r.URL.Path)
	})}
	go srv.Serve(ln)

	resp, err := http.Get("http://" + ln.Addr().String() + "/reactor")
	if err != nil {
		log.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status)
	fmt.Println(string(body))

	// Shutdown closes the listener and the idle connections; the loops
	// stop with the last of them.
	http.DefaultClient.CloseIdleConnections()
	if err := srv.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 200 OK
	// hello from GET /reactor
}
