// Lumen's public C++ API: tasks, futures (ObjectRef), actors, the shared-memory object store
// and the cluster's durable KV store.
//
//   #include <lumen/lumen.h>
//   int Plus(int a, int b) { return a + b; }
//   LUMEN_REMOTE(Plus);
//   int main(int argc, char** argv) {
//     lumen::Init(argc, argv);
//     int three = *lumen::Get(lumen::Task(Plus).Remote(1, 2));
//     lumen::Shutdown();
//   }
#pragma once

#include "lumen/actor.h"
#include "lumen/api.h"
#include "lumen/array.h"
#include "lumen/errors.h"
#include "lumen/kv.h"
#include "lumen/object_ref.h"
#include "lumen/placement_group.h"
#include "lumen/scheduling.h"
#include "lumen/task.h"
