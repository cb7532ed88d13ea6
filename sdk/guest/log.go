package guest

import (
	"strconv"
	"sync/atomic"
)

// Level is the severity of a log message; the values are those of log/slog
// and of the ABI's fsb.log.
type Level int32

// The levels fsb.log knows. Others are passed on as they are.
const (
	LevelDebug Level = -4
	LevelInfo  Level = 0
	LevelWarn  Level = 4
	LevelError Level = 8
)

// String returns the level's name as log/slog writes it.
func (l Level) String() string {
	switch l {
	case LevelDebug:
		return "DEBUG"
	case LevelInfo:
		return "INFO"
	case LevelWarn:
		return "WARN"
	case LevelError:
		return "ERROR"
	}
	return "LEVEL(" + strconv.Itoa(int(l)) + ")"
}

var logOutput atomic.Pointer[func(Level, string)]

// Log writes msg to the engine's structured log at level, with the plugin
// and step names (through the fsb.log host function). Natively, it writes to
// standard error, or to the function given to SetLogOutput.
//
// A log message costs a call into the host: log what helps to operate the
// plugin, not every value.
func Log(level Level, msg string) {
	if f := logOutput.Load(); f != nil {
		(*f)(level, msg)
		return
	}
	defaultLog(level, msg)
}

// SetLogOutput sends the messages of Log to f instead of the host (or, natively,
// standard error), to check them in tests. nil restores the default.
func SetLogOutput(f func(level Level, msg string)) {
	if f == nil {
		logOutput.Store(nil)
		return
	}
	logOutput.Store(&f)
}
