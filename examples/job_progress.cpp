// An application that embeds Boundary Realtime: its own HTTP route starts a background job
// (think: processing an upload) and reports the job's progress to the one connection that
// asked for it, through the server's C++ API.
//
//   ./example_job_progress --port 3001 --jwt-secret <32+ bytes> --api-key <16+ bytes>
//   1. connect a WebSocket to ws://127.0.0.1:3001/ws?token=<jwt> and note `connection-id`
//   2. curl -X POST http://127.0.0.1:3001/jobs/start -d '{"connection-id":"<id>","steps":5}'
//   3. the connection receives {"type":"job-progress","job-id":...,"percent":20} ... 100,
//      then {"type":"job-complete",...}
//
// A real application would authenticate /jobs/start (its own session, or the API key by
// mounting the route under /api/, where the server checks the key before calling it).

#include <atomic>
#include <csignal>
#include <cstdio>
#include <list>
#include <mutex>
#include <string>
#include <thread>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "boundary/realtime/jwt_verifier.hpp"
#include "boundary/realtime/server.hpp"

namespace rt = boundary::realtime;
namespace json = boost::json;

namespace {

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return argv[i + 1];
  return fallback;
}

// Background jobs live on their own threads: the server's loop threads must never block.
class Jobs {
 public:
  explicit Jobs(rt::Server& server) : server_(server) {}
  ~Jobs() {
    stopping_ = true;
    std::lock_guard lock(mutex_);
    for (auto& t : threads_) t.join();
  }

  std::string start(std::string connection_id, int steps) {
    const std::string job_id = "job-" + std::to_string(++next_id_);
    std::lock_guard lock(mutex_);
    threads_.emplace_back([this, job_id, connection_id = std::move(connection_id), steps] {
      for (int i = 1; i <= steps && !stopping_; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the "work"
        server_.send_to_connection(connection_id, {{"type", "job-progress"}, {"job-id", job_id},
                                                   {"percent", i * 100 / steps}});
      }
      server_.send_to_connection(connection_id, {{"type", "job-complete"}, {"job-id", job_id}});
    });
    return job_id;
  }

 private:
  rt::Server& server_;
  std::mutex mutex_;
  std::list<std::thread> threads_;
  std::atomic<int> next_id_{0};
  std::atomic<bool> stopping_{false};
};

}  // namespace

int main(int argc, char** argv) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  rt::Config config;
  config.port = static_cast<std::uint16_t>(std::stoi(arg(argc, argv, "--port", "3001")));
  config.api_key = arg(argc, argv, "--api-key", "");
  config.threads = 1;
  try {
    rt::Server server(config, rt::make_hmac_verifier(arg(argc, argv, "--jwt-secret", "")));
    Jobs jobs(server);
    server.add_route("POST", "/jobs/start", [&jobs](const rt::HttpRequest& req, rt::Server::Responder respond) {
      boost::system::error_code ec;
      auto body = json::parse(req.body, ec);
      const auto* id = !ec && body.is_object() ? body.get_object().if_contains("connection-id") : nullptr;
      if (!id || !id->is_string()) return respond({400, R"({"error":"connection-id is required"})"});
      int steps = 5;
      if (auto* s = body.get_object().if_contains("steps"); s && s->is_int64())
        steps = static_cast<int>(std::clamp<std::int64_t>(s->get_int64(), 1, 100));
      const auto job_id = jobs.start(std::string(id->get_string()), steps);
      respond({202, json::serialize(json::object{{"job-id", job_id}})});
    });
    const auto port = server.start();
    std::printf("job-progress example listening on 127.0.0.1:%u\n", port);
    std::fflush(stdout);
    int sig = 0;
    sigwait(&signals, &sig);
    server.shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "example: %s\n", e.what());
    return 2;
  }
  return 0;
}
