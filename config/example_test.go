package config_test

import (
	"errors"
	"fmt"

	"github.com/mllpd/mllpd/config"
)

func ExampleParse() {
	c, err := config.Parse([]byte(`
data_dir: /var/lib/mllpd
listeners:
  - name: pas
    listen: "127.0.0.1:2575"
destinations:
  - {name: archive, type: file, dir: /var/lib/mllpd/out}
routes:
  - name: all-to-archive
    to: [{destination: archive}]
`), "mllpd.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Summary())
	fmt.Println(c.Listeners[0].AckMode, c.Listeners[0].CommitTimeout, c.AdminTokenFile())
	// Output:
	// 1 listener, 1 destination, 1 route, 0 tables
	// original 10s /var/lib/mllpd/admin.token
}

func ExampleErrors() {
	_, err := config.Parse([]byte(`
listeners:
  - name: pas
    listen: "0.0.0.0:99999"
routes:
  - name: r
    to: [{destination: epx}]
`), "mllpd.yaml")
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Printf("mllpd.yaml:%d: %v\n", e.Line, e)
		}
	}
	// Output:
	// mllpd.yaml:4: listeners[0].listen: "0.0.0.0:99999": port out of range
	// mllpd.yaml:7: routes[0].to[0].destination: unknown destination "epx"
}
