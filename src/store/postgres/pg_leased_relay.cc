#include "store/postgres/pg_leased_relay.h"

#include "common/log.h"
#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_lease.h"
#include "store/postgres/pg_read_store.h"

namespace wallex {

// ---------------------------------------------------------------------------------- position

PgPublishedPosition::PgPublishedPosition(std::unique_ptr<PgConnection> connection)
    : connection_(std::move(connection)) {}
PgPublishedPosition::~PgPublishedPosition() = default;

Result<std::unique_ptr<PgPublishedPosition>, StoreError> PgPublishedPosition::open(
    const std::string& url) {
  auto connected = PgConnection::connect(url);
  if (!connected) return fail(connected.error());
  return std::unique_ptr<PgPublishedPosition>(
      new PgPublishedPosition(std::move(connected).value()));
}

Result<std::int64_t, StoreError> PgPublishedPosition::load() {
  auto rows = connection_->exec("SELECT position FROM relay_published");
  if (!rows) return fail(rows.error());
  if (rows.value().rows() != 1) {
    return fail(StoreError{StoreErrorKind::kCorrupt, "relay_published must hold exactly one row"});
  }
  return rows.value().int64(0, 0);
}

Status<StoreError> PgPublishedPosition::save(std::int64_t position, TimestampMs saved_at_ms) {
  const std::string p = std::to_string(position);
  const std::string at = std::to_string(saved_at_ms);
  auto done = connection_->exec(
      "UPDATE relay_published SET position = $1::bigint, saved_at_ms = $2::bigint"
      " WHERE position < $1::bigint",
      PgParams{p, at});
  if (!done) return fail(done.error());
  return Ok{};
}

// ---------------------------------------------------------------------------------- lease

PgLeasedRelay::PgLeasedRelay(std::string url, std::string instance_name, const Clock& clock,
                             RelayOptions options)
    : url_(std::move(url)),
      instance_name_(std::move(instance_name)),
      clock_(clock),
      options_(std::move(options)),
      standby_checker_(
          BrokerCheckerOptions{options_.brokers, options_.config, options_.metadata_timeout_ms}) {}

PgLeasedRelay::~PgLeasedRelay() { stop(); }

Status<std::string> PgLeasedRelay::open() {
  auto positions = PgPublishedPosition::open(url_);
  if (!positions) return fail("the published position: " + positions.error().message);
  standby_positions_ = std::move(positions).value();
  auto loaded = standby_positions_->load();
  if (!loaded) return fail("the published position: " + loaded.error().message);
  standby_published_.store(loaded.value());
  // Validates the librdkafka properties on every instance (a relay that is never started).
  auto log = PgEventLog::open(url_);
  if (!log) return fail("the log: " + log.error().message);
  Relay probe(*log.value(), *standby_positions_, clock_, options_);
  if (auto opened = probe.open(); !opened) return opened;
  return standby_checker_.open();
}

void PgLeasedRelay::start() {
  standby_checker_.start();
  thread_ = std::thread([this] { run(); });
}

void PgLeasedRelay::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  stop_relay();
  lease_.reset();
  standby_checker_.stop();
}

void PgLeasedRelay::notify_head(std::int64_t last_position) {
  head_.store(std::max(head_.load(), last_position));
  std::lock_guard lock(mutex_);
  if (relay_) relay_->notify_head(last_position);
}

RelayStats PgLeasedRelay::stats() const {
  {
    std::lock_guard lock(mutex_);
    if (relay_) return relay_->stats();
  }
  RelayStats stats;
  stats.state = "standby";
  stats.published_position = standby_published_.load();
  stats.saved_position = stats.published_position;
  stats.head_position = std::max(head_.load(), stats.published_position);
  stats.backlog = stats.head_position - stats.published_position;
  return stats;
}

void PgLeasedRelay::check_brokers(std::function<void(BrokerCheck)> done) {
  {
    std::lock_guard lock(mutex_);
    if (relay_) {
      relay_->check_brokers(std::move(done));
      return;
    }
  }
  standby_checker_.check(std::move(done));
}

void PgLeasedRelay::run() {
  bool first = true;
  while (true) {
    if (!first) {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, std::chrono::milliseconds(kLeaseRetryIntervalMs),
                     [this] { return stopping_; });
      if (stopping_) return;
    }
    first = false;
    manage_lease();
    if (!relaying_.load() && standby_positions_) {
      if (auto loaded = standby_positions_->load(); loaded) {
        standby_published_.store(loaded.value());
      } else if (auto reopened = PgPublishedPosition::open(url_); reopened) {
        standby_positions_ = std::move(reopened).value();
      }
    }
  }
}

void PgLeasedRelay::manage_lease() {
  if (!lease_) {
    auto opened = PgLease::open(url_, kRelayLeaseKey, instance_name_);
    if (!opened) {
      log::warn("relay: cannot open the relay lease: " + opened.error().message);
      return;
    }
    lease_ = std::move(opened).value();
  }
  auto acquired = lease_->try_acquire();
  if (!acquired) {
    log::warn("relay: relay lease lost: " + acquired.error().message);
    stop_relay();
    lease_.reset();
    return;
  }
  if (!acquired.value() || relaying_.load()) return;
  auto log = PgEventLog::open(url_);
  auto positions = PgPublishedPosition::open(url_);
  if (!log || !positions) {
    log::warn("relay: cannot open the relay's connections: " +
              (!log ? log.error().message : positions.error().message));
    lease_.reset();
    return;
  }
  relay_log_ = std::move(log).value();
  relay_positions_ = std::move(positions).value();
  auto relay = std::make_unique<Relay>(*relay_log_, *relay_positions_, clock_, options_);
  if (auto opened = relay->open(); !opened) {
    log::warn("relay: cannot start the relay: " + opened.error());
    relay_positions_.reset();
    relay_log_.reset();
    lease_.reset();
    return;
  }
  relay->start();
  relay->notify_head(head_.load());
  {
    std::lock_guard lock(mutex_);
    relay_ = std::move(relay);
  }
  relaying_.store(true);
  log::info("relay: " + instance_name_ + " holds the relay lease and publishes to Kafka");
}

void PgLeasedRelay::stop_relay() {
  std::unique_ptr<Relay> relay;
  {
    std::lock_guard lock(mutex_);
    relay = std::move(relay_);
  }
  if (relay) relay->stop();
  relay.reset();
  relay_positions_.reset();
  relay_log_.reset();
  relaying_.store(false);
}

}  // namespace wallex
