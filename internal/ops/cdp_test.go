package ops

// A minimal Chrome DevTools Protocol client over a hand-written websocket
// (RFC 6455, client side: masked text frames out, unmasked frames in), so
// the browser test needs no new module. It drives Debian's chromium started
// with --headless --remote-debugging-port=0.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// chromiumFlags keep an offline machine's chromium from reaching Google.
var chromiumFlags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--disable-default-apps", "--disable-extensions", "--metrics-recording-only",
	"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1280,1600",
}

// findChromium returns Debian's chromium or skips the test.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed: run scripts/browser.sh (as root it installs Debian's chromium package) to run the browser test")
	return ""
}

// startChromium starts a headless chromium with a fresh profile and returns
// a CDP connection to its first page.
func startChromium(t *testing.T, ctx context.Context) *cdp {
	t.Helper()
	bin := findChromium(t)
	// The profile is not a t.TempDir: chromium's helper processes may
	// still write into it while the test's cleanup removes it.
	profile, err := os.MkdirTemp("", "jirabridge-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, chromiumFlags...), "--user-data-dir="+profile, "about:blank")
	cmd := exec.Command(bin, args...)
	// Its own process group, so the cleanup ends chromium's helpers too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = os.RemoveAll(profile)
	})
	// chromium prints "DevTools listening on ws://127.0.0.1:PORT/..." once
	// the debugging port is open.
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		var tail []string
		for sc.Scan() {
			line := sc.Text()
			if !sent {
				tail = append(tail, line)
				if i := strings.Index(line, "ws://"); i >= 0 && strings.Contains(line, "DevTools listening") {
					found <- line[i:]
					sent = true
				}
			}
		}
		if !sent {
			found <- "error: " + strings.Join(tail, "\n")
		}
	}()
	var wsURL string
	select {
	case wsURL = <-found:
	case <-ctx.Done():
		t.Fatal("chromium did not open its debugging port")
	}
	if strings.HasPrefix(wsURL, "error: ") {
		t.Fatalf("chromium exited before opening its debugging port:\n%s", wsURL)
	}
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	var targets []struct {
		Type, WebSocketDebuggerURL string
	}
	resp, err := http.Get("http://" + u.Host + "/json/list")
	if err != nil {
		t.Fatalf("list chromium targets: %v", err)
	}
	err = json.NewDecoder(resp.Body).Decode(&targets)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Type == "page" {
			c, err := dialCDP(ctx, tg.WebSocketDebuggerURL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.close() })
			return c
		}
	}
	t.Fatalf("chromium has no page target: %+v", targets)
	return nil
}

type cdpMessage struct {
	ID     int64           `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

type cdp struct {
	conn net.Conn
	r    *bufio.Reader
	ctx  context.Context

	wmu    sync.Mutex
	nextID int64

	mu      sync.Mutex
	waiting map[int64]chan cdpMessage
	events  chan cdpMessage
	readErr error
}

func dialCDP(ctx context.Context, wsURL string) (*cdp, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("dial devtools: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	keyRaw := make([]byte, 16)
	_, _ = rand.Read(keyRaw)
	key := base64.StdEncoding.EncodeToString(keyRaw)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", u.RequestURI(), u.Host, key)
	r := bufio.NewReaderSize(conn, 1<<16)
	resp, err := http.ReadResponse(r, &http.Request{Method: http.MethodGet})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, fmt.Errorf("websocket handshake: %s", resp.Status)
	}
	c := &cdp{conn: conn, r: r, ctx: ctx, waiting: map[int64]chan cdpMessage{}, events: make(chan cdpMessage, 256)}
	go c.readLoop()
	return c, nil
}

func (c *cdp) close() { c.conn.Close() }

func (c *cdp) writeText(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	hdr := []byte{0x81} // FIN + text
	n := len(b)
	switch {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	mask := make([]byte, 4)
	_, _ = rand.Read(mask)
	hdr = append(hdr, mask...)
	out := make([]byte, n)
	for i := range b {
		out[i] = b[i] ^ mask[i%4]
	}
	_, err := c.conn.Write(append(hdr, out...))
	return err
}

// readMessage reads one whole message (joining continuation frames) and
// answers pings.
func (c *cdp) readMessage() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		var mask []byte
		if h[1]&0x80 != 0 {
			mask = make([]byte, 4)
			if _, err := io.ReadFull(c.r, mask); err != nil {
				return nil, err
			}
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(c.r, payload); err != nil {
			return nil, err
		}
		for i := range payload {
			if mask != nil {
				payload[i] ^= mask[i%4]
			}
		}
		switch op {
		case 0x8:
			return nil, errors.New("devtools closed the websocket")
		case 0x9, 0xA: // ping, pong: chromium does not ping its clients
			continue
		}
		msg = append(msg, payload...)
		if fin {
			return msg, nil
		}
	}
}

func (c *cdp) readLoop() {
	for {
		b, err := c.readMessage()
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			for _, ch := range c.waiting {
				close(ch)
			}
			c.waiting = map[int64]chan cdpMessage{}
			c.mu.Unlock()
			close(c.events)
			return
		}
		var m cdpMessage
		if err := json.Unmarshal(b, &m); err != nil {
			continue
		}
		if m.ID != 0 {
			c.mu.Lock()
			ch := c.waiting[m.ID]
			delete(c.waiting, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		select {
		case c.events <- m:
		default: // nobody waits for this kind of event
		}
	}
}

// call sends a command and waits for its result.
func (c *cdp) call(method string, params any, result any) error {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan cdpMessage, 1)
	c.waiting[id] = ch
	err := c.readErr
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if params == nil {
		params = struct{}{}
	}
	b, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return err
	}
	if err := c.writeText(b); err != nil {
		return fmt.Errorf("send %s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: connection closed: %v", method, c.readErr)
		}
		if m.Error != nil {
			return fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-c.ctx.Done():
		return fmt.Errorf("%s: %w", method, c.ctx.Err())
	}
}

// waitEvent waits for the next event named method, dropping others.
func (c *cdp) waitEvent(method string) error {
	for {
		select {
		case m, ok := <-c.events:
			if !ok {
				return fmt.Errorf("waiting for %s: connection closed", method)
			}
			if m.Method == method {
				return nil
			}
		case <-c.ctx.Done():
			return fmt.Errorf("waiting for %s: %w", method, c.ctx.Err())
		}
	}
}

// drainEvents forgets queued events, so the next waitEvent sees only new
// ones.
func (c *cdp) drainEvents() {
	for {
		select {
		case <-c.events:
		default:
			return
		}
	}
}

// navigate opens u and waits until it has loaded.
func (c *cdp) navigate(u string) error {
	c.drainEvents()
	if err := c.call("Page.navigate", map[string]string{"url": u}, nil); err != nil {
		return err
	}
	return c.waitEvent("Page.loadEventFired")
}

// eval runs JavaScript in the page and returns its value as a string.
func (c *cdp) eval(expr string) (string, error) {
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := c.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res); err != nil {
		return "", err
	}
	if res.ExceptionDetails != nil {
		return "", fmt.Errorf("evaluate %q: %s", expr, res.ExceptionDetails.Text)
	}
	if res.Result.Value == nil {
		return "", nil
	}
	return fmt.Sprint(res.Result.Value), nil
}

// clickAndWait clicks the element with id (a submit button) and waits for
// the page the form leads to.
func (c *cdp) clickAndWait(id string) error {
	c.drainEvents()
	if _, err := c.eval(fmt.Sprintf("document.getElementById(%q).click()", id)); err != nil {
		return err
	}
	return c.waitEvent("Page.loadEventFired")
}

func (c *cdp) screenshot() ([]byte, error) {
	var res struct {
		Data string `json:"data"`
	}
	if err := c.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &res); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(res.Data)
}
