// IOWorkLoop (IOKit/IOWorkLoop.h): a thread that runs its event sources'
// work one at a time under a gate, so that a driver's completion handlers
// never race each other or the actions it runs through runAction.
//
// The gate is a recursive lock. The thread holds it while it asks each
// enabled event source in turn for work (checkForWork), until none has more,
// then sleeps until signalWorkAvailable. The work loop retains the event
// sources added to it.
#ifndef KMBENCH_KPI_IOKIT_IOWORKLOOP_H
#define KMBENCH_KPI_IOKIT_IOWORKLOOP_H

#include <IOKit/IOTypes.h>
#include <libkern/c++/OSObject.h>

class IOEventSource;
struct IOWorkLoopState;  // kmbench: the thread, the gate and the list (kpi/src/ioworkloop.cpp)

class IOWorkLoop : public OSObject {
  OSDeclareDefaultStructors(IOWorkLoop);

 public:
  typedef IOReturn (*Action)(OSObject* target, void* arg0, void* arg1, void* arg2, void* arg3);

  /// post: a running work loop, or NULL (no memory, no thread).
  static IOWorkLoop* workLoop();
  bool init() override;

  /// post: kIOReturnSuccess, or kIOReturnBadArgument (NULL, or already on a work loop).
  virtual IOReturn addEventSource(IOEventSource* newEvent);
  /// post: kIOReturnSuccess, or kIOReturnBadArgument when it is not on this loop.
  virtual IOReturn removeEventSource(IOEventSource* toRemove);
  virtual void enableAllEventSources() const;
  virtual void disableAllEventSources() const;

  /// True on the work loop's own thread.
  virtual bool onThread() const;
  /// True when the calling thread holds the gate.
  virtual bool inGate() const;
  virtual void closeGate();
  virtual void openGate();
  virtual bool tryCloseGate();
  /// Runs action(target, args) on the calling thread with the gate closed.
  virtual IOReturn runAction(Action action, OSObject* target, void* arg0 = NULL, void* arg1 = NULL,
                             void* arg2 = NULL, void* arg3 = NULL);
  /// Wakes the thread to look for work.
  virtual void signalWorkAvailable();

 protected:
  void free() override;

 private:
  static void threadMain(IOWorkLoopState* state);
  IOWorkLoopState* fState = NULL;
};

#endif
