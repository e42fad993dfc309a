package blk

// RunSync runs fn as a request named name, outside any other request
// (a driver's I/O at open, close or reopen), and runs the loop until it
// ends. It returns fn's error, or *ErrStuck when the request can never
// finish (it stays in flight). Code that already runs in a request must
// call fn with its own *Co instead: the loop is not reentrant.
func (l *Loop) RunSync(name string, fn func(co *Co) error) error {
	var err error
	co := l.Spawn(name, func(co *Co) { err = fn(co) })
	if e := l.RunUntil(co.Name(), co.Done); e != nil {
		return e
	}
	return err
}
