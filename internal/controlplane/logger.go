package controlplane

import (
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/sirupsen/logrus"
)

// logger is OPA's logging interface over Elevate's logrus logger, so OPA's
// plugins write structured lines to the same log at the same level.
type logger struct {
	base  *logrus.Logger
	entry *logrus.Entry
}

var _ logging.Logger = logger{}

func newLogger(base *logrus.Logger) logger {
	return logger{base: base, entry: base.WithField("component", "opa")}
}

func (l logger) Debug(f string, a ...any) { l.entry.Debugf(f, a...) }
func (l logger) Info(f string, a ...any)  { l.entry.Infof(f, a...) }
func (l logger) Warn(f string, a ...any)  { l.entry.Warnf(f, a...) }
func (l logger) Error(f string, a ...any) { l.entry.Errorf(f, a...) }

func (l logger) WithFields(fields map[string]any) logging.Logger {
	return logger{base: l.base, entry: l.entry.WithFields(fields)}
}

// GetLevel maps logrus's level onto OPA's four; plugins ask it before
// building debug output.
func (l logger) GetLevel() logging.Level {
	switch lvl := l.base.GetLevel(); {
	case lvl >= logrus.DebugLevel:
		return logging.Debug
	case lvl == logrus.InfoLevel:
		return logging.Info
	case lvl == logrus.WarnLevel:
		return logging.Warn
	}
	return logging.Error
}

// SetLevel does nothing: the level is Elevate's (log.level), not a plugin's.
func (logger) SetLevel(logging.Level) {}
