package wsroute

import (
	"fmt"
	"net/http"
)

// This file is the contract between wsroute and the coder/websocket
// internals it relies on, beyond that package's documentation. Each
// assumption names where coder/websocket v1.8.15 makes it true, where
// wsroute checks it at run time, and the test that fails if a new
// version breaks it. Upgrading coder/websocket means re-reading the
// lines cited here and running those tests.
//
// 1. Hijack through our writer. websocket.Accept takes the first
//    http.Hijacker it finds, following Unwrap (hijack.go:25), and
//    hijackWriter defines Hijack itself, so the net.Conn coder/websocket
//    writes to is our netConn. Checked: Accept fails with "was not
//    hijacked through wsroute's ResponseWriter" when hijackWriter.nc is
//    nil (accept.go). Test: every test that sends; the write counting
//    of TestSendBatchIsOneWriteAndSeparateFrames.
//
// 2. brw.Writer is its write buffer. coder/websocket keeps the
//    hijacked bufio.Writer as its own (accept.go:180) and writes every
//    frame through it; Hijack points that writer at netConn after
//    flushing the 101 response, so each byte passes netConn.Write.
//    Checked: the frame check of assumption 3 sees every write. Test:
//    TestControlFramesStayWholeUnderPingFlood.
//
// 3. Each control frame in one Write, starting at a frame boundary.
//    writeFrame (write.go:~320-358) writes header and payload into the
//    write buffer (128 bytes in direct mode, 13) and flushes at the end
//    of every final frame; a control frame is at most 2+125 bytes and
//    always final, so with no extension negotiated (4) each Write
//    coder/websocket makes is exactly one whole control frame. The direct data path interleaves its frames between
//    those writes, so a control frame split across two Write calls would
//    corrupt the stream. Checked: netConn.writeControl parses each write
//    (parseControlFrame) and refuses anything else with
//    errNotOneControlFrame, logged at ERROR, closing the connection
//    before a byte of it is written. Test:
//    TestControlFramesStayWholeUnderPingFlood.
//
// 4. Sec-WebSocket-Extensions is set exactly when deflate is on.
//    Accept sets the response header if and only if it negotiated
//    permessage-deflate (accept.go:146-149); directMode reads it to
//    choose who writes data frames. Test: TestDirectModeFollowsDeflate.
//
// 5. The close state is private. coder/websocket records that it sent
//    a close frame in an unexported field (write.go:362) and refuses its
//    own writes after it, but knows nothing of ours. netConn keeps its
//    own closeSent, set when a close frame passes Write, and writes no
//    data after it. Test: TestNoDataFrameFollowsTheCloseFrame.
//
// 6. Control frames have a 5 s timer, and pongs are written by the
//    reader. writeControl bounds each control frame by 5 s or its
//    caller's context (write.go:277), and a context that ends while a
//    frame is being written closes the socket (conn.go:176); the reader
//    answers a ping by writing the pong itself (read.go:323). So a
//    control frame may never wait for the wire behind a long data write:
//    in direct mode netConn leaves pings and pongs in a slot and returns
//    at once, and the data writer writes them at its next frame
//    boundary. Test: TestPingsDoNotKillAHealthyLargeSend.
//
// 7. The socket may be closed as soon as a close frame's Write returns.
//    When the peer's close was already read, writeFrame closes the
//    connection right after writing the close frame (write.go:368), so
//    a close frame cannot be left in the slot: its Write waits for the
//    next frame boundary, where the data writer writes it and stops.
//    Test: TestNoDataFrameFollowsTheCloseFrame.
//
// 8. Pings match pongs by payload, one at a time. Ping waits for a pong
//    carrying its own payload (conn.go:237, read.go:329); wsroute pings
//    only from the keepalive, one ping at a time, so keeping only the
//    latest ping in the slot loses none.
//
// 9. A streamed message is written frame by frame. With an extension,
//    Conn.Writer's Write hands each piece (each flate output block,
//    compressed) to writeFrame, which takes and releases the frame lock
//    per frame (write.go:191-230), so control frames pass between them;
//    Conn.Write would hold it for one frame of the whole message.
//    writeCoderMessage streams messages over 64 KiB for that reason.
//    Test: TestPingsDoNotKillAHealthyLargeSend, "long write, compressed".
//
// 10. It reads the peer through the net.Conn Hijack returns, and a read
//    error stops it before it answers. Accept resets the hijacked
//    bufio.Reader onto that net.Conn, after what was buffered
//    (accept.go:167-168), and reads every frame through it; a close
//    frame is echoed only after its header and payload were read
//    (read.go:342-360), and a failed read returns from Reader with
//    nothing written (read.go:260-273). guardedConn relies on both: it
//    holds a close frame back and fails the read when its reason is not
//    UTF-8, and Hijack moves what net/http buffered into it first.
//    Test: TestPeerCloseReasonNotUTF8FailsWith1007 (a failure would show
//    as the echoed 1000).
//
// 11. A Conn nobody closed waits for its finalizer. NewConn sets a
//    finalizer that closes it (conn.go:138-140); only close clears it
//    and closes the private closed channel. When the socket is closed
//    under the handler (a missed pong), no close handshake runs, so
//    release calls CloseNow when the handler returns. Test:
//    TestCoderConnReleasedWhenTheSocketClosedFirst reads that channel.
//
// 12. A read error at a frame boundary leaves the Conn open. When the
//    net.Conn fails a read of a frame's first byte, Reader returns the
//    error (frame.go:52-58, read.go:260-273 and 183-188) without closing
//    the connection or writing anything, its read lock is released
//    (read.go:376), and the next Reader call reads on; a context without
//    Done arms no timer that would close it (conn.go:188). A detached
//    connection's reader (detach.go) relies on it: guardedConn answers
//    errIdle when coder/websocket asks for a frame that has not begun to
//    arrive, so the reader waits for the peer in guardedConn.wait, a few
//    frames deep, rather than parked in coder/websocket's read chain with
//    a stack twice the size (or, on Linux, returns, and the poller
//    starts the next reader: poll_linux.go). Checked: only at a boundary
//    guardedConn has counted itself (atBoundary), and readNext passes on
//    any other error as a failed read. Tests: TestDetachedIdleWaitsShallow
//    (an echo after the peer's pings, with the reader found in
//    guardedConn.wait), TestDetachedIdleHasNoGoroutine (the same with
//    the poller: no reader left).
//
// 13. The hijacked reader and writer are plain streams of any size.
//    A server Conn keeps brw.Reader (after Reset, which keeps its
//    buffer) and brw.Writer (accept.go:167-181); it reads through the
//    reader only with ReadByte and io.ReadFull (frame.go:55-100,
//    read.go:267-283, close.go:209-222), writes each frame into the
//    writer and flushes it when the frame is final (write.go:343-356,
//    379), never asks their size, and puts them in its pools only for a
//    client (read.go:158-161, write.go:267-270). So Hijack hands it
//    small ones (readbuf.go): in direct mode a writer of writerBufSize
//    (128) bytes, which holds the longest control frame (127) so that
//    it still leaves in one Write (3); and a reader of readerBufSize
//    (16) over sockReader, which reads the socket in 4 KiB pieces.
//    net/http's conn points at brw's reader and writer until the handler
//    returns, so Hijack replaces what they hold rather than returning
//    new ones: that frees net/http's two 4 KiB buffers (the caller owns
//    them after Hijack, http.Hijacker says). Tests:
//    TestControlFramesFitTheSmallWriter (a 125-byte ping's pong and a
//    123-byte close reason come back whole; a writer too small splits
//    them and the check of 3 ends the connection),
//    TestPooledReadBufferReadsEveryFraming.
//
// 14. The extension header is set before Hijack. Accept sets
//    Sec-WebSocket-Extensions (accept.go:146-149) before it hijacks
//    (accept.go:157), so Hijack knows from the response headers, as
//    directMode does after Accept (4), whether coder/websocket writes
//    data frames and keeps its 4 KiB writer (deflate) or writes only
//    control frames. Test: TestDirectModeFollowsDeflate (the writer
//    chosen at Hijack agrees with the mode chosen after Accept).
//
// 15. One reader at a time, and an idle reader holds no bytes. Every
//    read of the connection is made under coder/websocket's read lock
//    (read.go:372-376, 436-440, close.go:202-206), and on a detached
//    connection under guardedConn.mu too, which its wait and poll also
//    hold, so sockReader needs no lock of its own. Between messages
//    coder/websocket waits in a read of the next frame header with every
//    byte before it consumed (a detached connection, in sockReader.wait,
//    or with no reader, its socket in the poller's epoll set), so the
//    pooled buffer is back in the pool while a connection is idle;
//    atBoundary counts bytes sockReader holds as not consumed. On Unix
//    the wait (and the poller's reader's read, which does not wait) is
//    RawConn.Read, which honours the read deadline that wsroute's
//    Conn.close sets to end coder/websocket's close wait, and reports a
//    closed socket as net.ErrClosed, as Read does. Tests:
//    TestPooledReadBufferReadsEveryFraming (no buffer held after the
//    last message), TestSockReaderReadsAndFailsAsTheSocket, the detached
//    tests (detach_test.go).
//
// 16. An errIdle answered means coder/websocket's read buffer is empty.
//    It reads only with ReadByte and io.ReadFull (13), and a
//    bufio.Reader asks the connection for bytes in those only when it
//    holds none (bufio.go: ReadByte fills only when r == w; Read reads
//    through only when r == w). So when Read answers errIdle, at a frame
//    boundary, nothing is left in coder/websocket's buffer, and a
//    detached connection's reader may wait for the peer (guardedConn.wait),
//    or leave the wait to the poller, whose reader starts by reading the
//    socket (guardedConn.poll), without looking at that buffer: a look
//    that would race with coder/websocket's close handshake, which reads
//    through it on the goroutine of a Close. Tests: TestErrIdleOnlyWithAnEmptyReadBuffer
//    (every errIdle of bursts of frames of every size, with the buffer
//    looked at under the read lock), TestDetachedCloseFromElsewhere.
//
// 17. Reads that end at frame ends leave the read buffer empty after a
//    message. coder/websocket's Reader returns once the last frame of a
//    message is read to its end (read.go: msgReader reads exactly the
//    payload length and reads no further frame once fin is set), and a
//    bufio.Reader holds only what Read returned. So when each Read of a
//    detached connection stops at the end of the frame being read
//    (guardedConn.toFrameEnd), the buffer holds nothing once a message
//    has been read, and the reader waits for the next one without a
//    probe. The first such Read comes with the buffer empty (16); until
//    then the reader probes. Tests: TestErrIdleOnlyWithAnEmptyReadBuffer
//    (the buffer looked at after every message too),
//    TestModesMessagesInOneWrite, the conformance suite's detached
//    variants.
//
// 18. Nothing is read between Hijack and Accept's return. Accept resets
//    the hijacked reader onto io.MultiReader(bytes.NewReader(b), netConn)
//    with b what it held (accept.go:166-168), and reads nothing more
//    before it returns; Hijack left it empty (takeBuffered moved what
//    net/http had read past the request into guardedConn.pre), so
//    acceptLocked resets it onto the guardedConn itself, and a connection
//    keeps neither reader (nor the MultiReader's frame on its stack).
//    Checked: only when the reader holds nothing. Tests: every test that
//    receives; TestFramesSentWithTheHandshakeRequest (frames sent with
//    the handshake request, which wait in pre).
//
// 19. A message read to its length has ended. Reader returns a
//    msgReader set to the first frame's header (read.go:417-434); its
//    Read never returns more than the payload left (read.go:478-480), and
//    once a final frame's payload is read (fin, payloadLength 0) the next
//    Reader starts on the next frame, with no Read that returns io.EOF
//    first (read.go:378: it checks only fin). The read limit counts the
//    bytes read, one more than SetReadLimit's n allowed (read.go:97-105).
//    So readMessage reads a short one-frame message in direct mode to
//    the length guardedConn saw in its header (messageLen), and saves
//    coder/websocket a locked Read per message. Tests:
//    TestOneFrameMessagesReadToTheirLength (every header length, every
//    mode, contents compared), TestDeclaredLengthIsNotAllocatedAhead,
//    TestModes*, the conformance suite.

// Control frame opcodes (RFC 6455, section 5.5), and the continuation
// opcode of fragmented data messages.
const (
	opContinuation = 0x0
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA

	// maxControlFrame is the longest control frame a server writes:
	// a 2-byte header and at most 125 bytes of payload, unmasked.
	maxControlFrame = 2 + 125
)

// parseControlFrame reports whether p is exactly one whole control frame
// as a server writes it (assumption 3): FIN set, no RSV bit, a control
// opcode, unmasked, a payload of at most 125 bytes that ends where p
// ends.
func parseControlFrame(p []byte) (op byte, ok bool) {
	if len(p) < 2 || p[0]&0xf0 != 0x80 {
		return 0, false
	}
	op = p[0] & 0x0f
	if op != opClose && op != opPing && op != opPong {
		return 0, false
	}
	n := int(p[1]) // the mask bit must be clear, so this is the length
	if n > 125 || len(p) != 2+n {
		return 0, false
	}
	return op, true
}

// errNotOneControlFrame is what a broken assumption 3 looks like.
func errNotOneControlFrame(p []byte) error {
	head := p[:min(len(p), 4)]
	return fmt.Errorf("wsroute: coder/websocket wrote %d bytes (starting % x) that are not one whole control frame; "+
		"wsroute's direct write path relies on coder/websocket v1.8.15 writing each control frame in one Write "+
		"(see wsroute/coder.go): the connection is closed so that no frame is corrupted. "+
		"Use the coder/websocket version in wsroute's go.mod, or report this as a wsroute bug", len(p), head)
}

// directMode reports whether wsroute writes data frames itself: when
// no extension was negotiated, which coder/websocket answers in the
// 101 response's Sec-WebSocket-Extensions header (assumption 4).
func directMode(h http.Header) bool {
	return h.Get("Sec-Websocket-Extensions") == ""
}

// logBroken logs a broken assumption about coder/websocket: a server
// error that the operator must see.
func (c *Conn) logBroken(err error) {
	c.route.opts.logger().Error(err.Error(), c.attrs()...)
}
