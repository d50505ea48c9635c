/* config_file.cpp -- read_config_file(): a config file's bytes, or an error
 * that names the file. */
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "config/config.h"

namespace dsz {

std::string read_config_file(const std::string &path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        fail(DSZ_ERR_IO, "%s: is a directory, not a config file", path.c_str());
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        int err = errno;
        fail(err == ENOENT ? DSZ_ERR_NOT_FOUND : DSZ_ERR_IO, "%s: cannot open the config file: %s",
             path.c_str(), std::strerror(err));
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) fail(DSZ_ERR_IO, "%s: error reading the config file", path.c_str());
    return text.str();
}

}  // namespace dsz
