#include "pg_database.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>

#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_migrations.h"

namespace wallex::testing {

std::string url_with_database(const std::string& url, const std::string& name) {
  const std::size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url + " dbname=" + name;  // keyword/value form
  const std::size_t query = url.find('?', scheme + 3);
  const std::size_t authority_end = std::min(url.find('/', scheme + 3), query);
  const std::string base = url.substr(0, authority_end == std::string::npos ? url.size() : authority_end);
  const std::string rest = query == std::string::npos ? "" : url.substr(query);
  return base + "/" + name + rest;
}

std::unique_ptr<PgDatabase> PgDatabase::create(bool migrate) {
  const char* server = std::getenv("WALLEX_PG_URL");
  if (server == nullptr || *server == '\0') {
    ADD_FAILURE() << "WALLEX_PG_URL is not set: the PostgreSQL tests need a server. Run them "
                     "through scripts/with-pg.sh (ctest and `make test` do), e.g. "
                     "scripts/with-pg.sh build/release/bin/pg_store_tests";
    return nullptr;
  }
  auto admin = PgConnection::connect(server);
  if (!admin) {
    ADD_FAILURE() << "cannot reach the PostgreSQL server of WALLEX_PG_URL: "
                  << admin.error().message;
    return nullptr;
  }
  static std::atomic<int> counter{0};
  std::random_device random;
  const std::string name = "wallex_t_" + std::to_string(getpid()) + "_" +
                           std::to_string(counter.fetch_add(1)) + "_" +
                           std::to_string(random() % 1'000'000);
  if (auto created = admin.value()->exec("CREATE DATABASE " + name); !created) {
    ADD_FAILURE() << "CREATE DATABASE " << name << ": " << created.error().message;
    return nullptr;
  }
  std::unique_ptr<PgDatabase> database(
      new PgDatabase(server, name, url_with_database(server, name)));
  if (migrate) {
    auto connection = PgConnection::connect(database->url());
    if (!connection) {
      ADD_FAILURE() << connection.error().message;
      return nullptr;
    }
    if (auto migrated = migrate_up(*connection.value()); !migrated) {
      ADD_FAILURE() << "migrate up: " << migrated.error().message;
      return nullptr;
    }
  }
  return database;
}

PgDatabase::~PgDatabase() {
  auto admin = PgConnection::connect(server_url_);
  if (!admin) {
    ADD_FAILURE() << "cannot drop test database " << name_ << ": " << admin.error().message;
    return;
  }
  if (auto dropped = admin.value()->exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
      !dropped) {
    ADD_FAILURE() << "DROP DATABASE " << name_ << ": " << dropped.error().message;
  }
}

}  // namespace wallex::testing
