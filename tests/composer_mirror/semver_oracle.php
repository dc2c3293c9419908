<?php
// Differential-test oracle: answers a whole batch of composer/semver questions in one PHP process.
// Usage: php semver_oracle.php [path/to/Composer/Semver/autoload.php] < questions.json
//
// stdin:  {"satisfies": [[version, constraint], ...], "normalize": [version, ...],
//          "parse": [constraint, ...], "compare": [[version1, operator, version2], ...],
//          "stability": [version, ...], "sort": [version, ...]}
// stdout: the same keys; each answer is the PHP result, or null where composer/semver throws
//         (parse answers are the parsed constraint rendered with __toString()).

declare(strict_types=1);

ini_set('display_errors', 'stderr');
error_reporting(E_ALL);

$autoload = $argv[1] ?? '/usr/share/php/Composer/Semver/autoload.php';
require $autoload;

use Composer\Semver\Comparator;
use Composer\Semver\Semver;
use Composer\Semver\VersionParser;

/** Run $fn, turning any exception into null (the Python side must raise InvalidVersion there). */
function attempt(callable $fn)
{
    try {
        return $fn();
    } catch (\Throwable $e) {
        return null;
    }
}

$input = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
$parser = new VersionParser();

$output = array(
    'satisfies' => array_map(
        fn ($pair) => attempt(fn () => Semver::satisfies($pair[0], $pair[1])),
        $input['satisfies'] ?? array()
    ),
    'normalize' => array_map(
        fn ($version) => attempt(fn () => $parser->normalize($version)),
        $input['normalize'] ?? array()
    ),
    'parse' => array_map(
        fn ($constraint) => attempt(fn () => (string) $parser->parseConstraints($constraint)),
        $input['parse'] ?? array()
    ),
    'compare' => array_map(
        fn ($triple) => Comparator::compare($triple[0], $triple[1], $triple[2]),
        $input['compare'] ?? array()
    ),
    'stability' => array_map(
        fn ($version) => VersionParser::parseStability($version),
        $input['stability'] ?? array()
    ),
    'sort' => Semver::sort($input['sort'] ?? array()),
);

echo json_encode($output, JSON_THROW_ON_ERROR | JSON_INVALID_UTF8_SUBSTITUTE);
