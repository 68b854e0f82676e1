// IOEventSource (IOKit/IOEventSource.h): the abstract source of work a work
// loop runs. A subclass queues work from any thread and calls
// signalWorkAvailable; the work loop then calls its checkForWork on the work
// loop's thread, with the gate closed.
#ifndef KMBENCH_KPI_IOKIT_IOEVENTSOURCE_H
#define KMBENCH_KPI_IOKIT_IOEVENTSOURCE_H

#include <IOKit/IOTypes.h>
#include <libkern/c++/OSObject.h>

class IOWorkLoop;

class IOEventSource : public OSObject {
  OSDeclareAbstractStructors(IOEventSource);
  friend class IOWorkLoop;

 public:
  typedef void (*Action)(OSObject* owner, ...);

  virtual void setAction(Action action);
  virtual Action getAction() const;
  virtual OSObject* getOwner() const { return owner; }
  virtual void enable();
  virtual void disable();
  virtual bool isEnabled() const;
  virtual IOWorkLoop* getWorkLoop() const;
  virtual bool onThread() const;

 protected:
  virtual bool init(OSObject* owner, IOEventSource::Action action = NULL);
  /// Runs some of the source's work. post: true when more is waiting.
  virtual bool checkForWork();
  virtual void setWorkLoop(IOWorkLoop* workLoop);
  /// Wakes the work loop (when the source is on one and enabled).
  void signalWorkAvailable();
  void closeGate();
  void openGate();
  bool tryCloseGate();

  OSObject* owner = NULL;
  Action action = NULL;
  bool enabled = true;
  IOWorkLoop* workLoop = NULL;
};

#endif
