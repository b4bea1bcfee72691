// PgDatabase: a fresh PostgreSQL database for one test, created on the server named by
// $WALLEX_PG_URL (scripts/with-pg.sh starts a throwaway cluster and sets it), migrated to the
// current schema, and dropped when the object is destroyed.
//
// Without WALLEX_PG_URL, or when the server cannot be reached, create() records a test failure
// (never a skip) and returns nullptr.
#pragma once

#include <memory>
#include <string>

namespace wallex::testing {

class PgDatabase {
 public:
  // migrate=false leaves the database empty (for migration tests).
  static std::unique_ptr<PgDatabase> create(bool migrate = true);
  ~PgDatabase();
  PgDatabase(const PgDatabase&) = delete;
  PgDatabase& operator=(const PgDatabase&) = delete;

  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

 private:
  PgDatabase(std::string server_url, std::string name, std::string url)
      : server_url_(std::move(server_url)), name_(std::move(name)), url_(std::move(url)) {}
  std::string server_url_;
  std::string name_;
  std::string url_;
};

// `url` with its database name replaced: postgresql://u@h:1/postgres?x=y -> .../name?x=y
std::string url_with_database(const std::string& url, const std::string& name);

}  // namespace wallex::testing
