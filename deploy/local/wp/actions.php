<?php
/**
 * The actions of driver.php: wpcdc_action_NAME(array $args): array. Each one does what a real
 * request of that kind does, through WordPress's own API, so the database sees the same writes
 * (and the binlog the same row events) as on a real site. Loaded by driver.php after WordPress.
 *
 * Conventions:
 *   - post ids/blog ids are ints; term lists are NAMES (created when missing, like the editor does);
 *   - dates: a unix timestamp (int), an ISO-8601 string with offset/Z, or a naive
 *     "Y-m-d H:i:s" string meaning SITE LOCAL time (WordPress's own convention for post_date);
 *   - data handed to wp_insert_post()/update_post_meta() is wp_slash()ed, because those APIs
 *     unslash their input (they expect request data, which WordPress slashes itself).
 */

// ------------------------------------------------------------------------------------- helpers

/** @return mixed the argument; InvalidArgumentException when absent/null */
function wpcdc_req( array $a, string $key ) {
	if ( ! array_key_exists( $key, $a ) || null === $a[ $key ] ) {
		throw new InvalidArgumentException( "missing argument '$key'" );
	}
	return $a[ $key ];
}

/** The post_id argument, checked to exist on the current blog. */
function wpcdc_post_id( array $a, string $key = 'post_id' ): int {
	$id = (int) wpcdc_req( $a, $key );
	if ( $id <= 0 || ! get_post( $id ) ) {
		throw new InvalidArgumentException( "post $id does not exist on blog " . get_current_blog_id() );
	}
	return $id;
}

/** Throw on WP_Error / false / 0, else return the value. */
function wpcdc_ok( $value, string $what ) {
	if ( is_wp_error( $value ) ) {
		throw new RuntimeException( $what . ': ' . implode( '; ', $value->get_error_messages() ) . ' [' . $value->get_error_code() . ']' );
	}
	if ( false === $value || 0 === $value || null === $value ) {
		throw new RuntimeException( $what . ' failed' );
	}
	return $value;
}

/** Site-local "Y-m-d H:i:s" from a timestamp, an ISO-8601 string with zone, or a naive local string. */
function wpcdc_local_date( $value ): string {
	if ( is_int( $value ) || is_float( $value ) || ( is_string( $value ) && ctype_digit( $value ) ) ) {
		return wp_date( 'Y-m-d H:i:s', (int) $value );
	}
	$s = trim( (string) $value );
	if ( preg_match( '/(Z|[+-]\d\d:?\d\d)$/i', $s ) ) {
		$dt = new DateTimeImmutable( $s );
		return $dt->setTimezone( wp_timezone() )->format( 'Y-m-d H:i:s' );
	}
	$s = str_replace( 'T', ' ', $s );
	foreach ( array( 'Y-m-d H:i:s', 'Y-m-d H:i', 'Y-m-d' ) as $format ) {
		$dt = DateTimeImmutable::createFromFormat( '!' . $format, $s, wp_timezone() );
		if ( $dt ) {
			return $dt->format( 'Y-m-d H:i:s' );
		}
	}
	throw new InvalidArgumentException( "unparseable date '$s'" );
}

/** Term ids for names in a taxonomy, inserting missing terms (wp_insert_term). */
function wpcdc_term_ids( array $names, string $taxonomy ): array {
	$ids = array();
	foreach ( $names as $name ) {
		$name = (string) $name;
		$term = term_exists( $name, $taxonomy );
		if ( ! $term ) {
			$term = wpcdc_ok( wp_insert_term( $name, $taxonomy ), "wp_insert_term($name, $taxonomy)" );
		}
		$ids[] = (int) $term['term_id'];
	}
	return $ids;
}

/**
 * One in-process REST request, as the block editor sends it (JSON body), through
 * rest_do_request(): routing, argument validation, permission callbacks and the controller are
 * the real ones; only the HTTP transport and cookie/nonce authentication are skipped.
 *
 * @return array{0: int, 1: mixed} HTTP status and response data
 */
function wpcdc_rest( string $method, string $route, ?array $body = null, array $query = array(), array $headers = array(), ?string $raw_body = null ): array {
	$request = new WP_REST_Request( $method, $route );
	foreach ( $headers as $name => $value ) {
		$request->set_header( $name, $value );
	}
	if ( $query ) {
		$request->set_query_params( $query );
	}
	if ( null !== $body ) {
		$request->set_header( 'Content-Type', 'application/json' );
		$request->set_body( wp_json_encode( $body ) );
	} elseif ( null !== $raw_body ) {
		$request->set_body( $raw_body );
	}
	$response = rest_do_request( $request );
	$data     = rest_get_server()->response_to_data( $response, false );
	if ( $response->is_error() ) {
		throw new RuntimeException( sprintf( 'REST %s %s -> %d: %s', $method, $route, $response->get_status(), wp_json_encode( $data ) ) );
	}
	return array( $response->get_status(), $data );
}

/**
 * Term ids for names the way the block editor gets them: look the name up through the REST
 * collection (the tag/category selectors search), and create missing ones with a POST to it
 * (what happens when you type a new tag and press enter) - before the post itself is saved.
 */
function wpcdc_rest_term_ids( array $names, string $taxonomy ): array {
	$tax  = get_taxonomy( $taxonomy );
	$base = '/' . ( $tax->rest_namespace ?? 'wp/v2' ) . '/' . ( $tax->rest_base ? $tax->rest_base : $taxonomy );
	$ids  = array();
	foreach ( $names as $name ) {
		$name = (string) $name;
		list( , $found ) = wpcdc_rest( 'GET', $base, null, array( 'search' => $name, 'per_page' => 100, 'context' => 'view' ) );
		$id = null;
		foreach ( (array) $found as $term ) {
			if ( strtolower( html_entity_decode( (string) $term['name'], ENT_QUOTES ) ) === strtolower( $name ) ) {
				$id = (int) $term['id'];
				break;
			}
		}
		if ( null === $id ) {
			list( , $created ) = wpcdc_rest( 'POST', $base, array( 'name' => $name ) );
			$id                 = (int) $created['id'];
		}
		$ids[] = $id;
	}
	return $ids;
}

/** The REST route of a post's type, e.g. /wp/v2/posts or /wp/v2/pages. */
function wpcdc_rest_post_route( int $post_id ): string {
	$type = get_post_type_object( get_post_type( $post_id ) );
	if ( ! $type || ! $type->show_in_rest ) {
		throw new InvalidArgumentException( "post $post_id: its type is not available over REST" );
	}
	return '/' . ( $type->rest_namespace ?? 'wp/v2' ) . '/' . ( $type->rest_base ? $type->rest_base : $type->name );
}

/**
 * Bytes for a file to "upload": a real tiny image for image extensions (GD; WordPress reads
 * its dimensions into _wp_attachment_metadata), a short text otherwise. Colour from the name,
 * so different files differ.
 */
function wpcdc_file_bytes( string $filename ): string {
	$ext = strtolower( pathinfo( $filename, PATHINFO_EXTENSION ) );
	if ( in_array( $ext, array( 'png', 'jpg', 'jpeg', 'gif', 'webp' ), true ) && function_exists( 'imagecreatetruecolor' ) ) {
		$img = imagecreatetruecolor( 8, 6 );
		$crc = crc32( $filename );
		imagefill( $img, 0, 0, imagecolorallocate( $img, $crc & 0xff, ( $crc >> 8 ) & 0xff, ( $crc >> 16 ) & 0xff ) );
		ob_start();
		if ( 'png' === $ext ) {
			imagepng( $img );
		} elseif ( 'gif' === $ext ) {
			imagegif( $img );
		} elseif ( 'webp' === $ext && function_exists( 'imagewebp' ) ) {
			imagewebp( $img );
		} else {
			imagejpeg( $img );
		}
		$bytes = (string) ob_get_clean();
		imagedestroy( $img );
		return $bytes;
	}
	return "wpcdc test file $filename\n";
}

/** wp_insert_post() + terms + meta, shared by create_post and seed. */
function wpcdc_insert_post( array $a ): int {
	$postarr = array(
		'post_title'   => (string) ( $a['title'] ?? '' ),
		'post_content' => (string) ( $a['content'] ?? '' ),
		'post_excerpt' => (string) ( $a['excerpt'] ?? '' ),
		'post_status'  => (string) ( $a['status'] ?? 'draft' ),
		'post_type'    => (string) ( $a['type'] ?? 'post' ),
		'post_author'  => get_current_user_id(),
	);
	if ( isset( $a['date'] ) ) {
		$postarr['post_date']     = wpcdc_local_date( $a['date'] );
		$postarr['post_date_gmt'] = get_gmt_from_date( $postarr['post_date'] );
	}
	if ( isset( $a['parent_id'] ) ) {
		$postarr['post_parent'] = (int) $a['parent_id'];
	}
	if ( isset( $a['slug'] ) ) {
		$postarr['post_name'] = (string) $a['slug'];
	}
	if ( isset( $a['author'] ) ) {
		$postarr['post_author'] = (int) $a['author'];
	}
	$post_id = (int) wpcdc_ok( wp_insert_post( wp_slash( $postarr ), true ), 'wp_insert_post' );
	if ( ! empty( $a['tags'] ) ) {
		wpcdc_ok( wp_set_post_terms( $post_id, array_map( 'strval', (array) $a['tags'] ), 'post_tag' ), 'wp_set_post_terms(post_tag)' );
	}
	if ( ! empty( $a['categories'] ) ) {
		wpcdc_ok( wp_set_post_terms( $post_id, wpcdc_term_ids( (array) $a['categories'], 'category' ), 'category' ), 'wp_set_post_terms(category)' );
	}
	foreach ( (array) ( $a['meta'] ?? array() ) as $key => $value ) {
		update_post_meta( $post_id, wp_slash( (string) $key ), wp_slash( $value ) );
	}
	return $post_id;
}

/** Small summary of a post after an action. */
function wpcdc_post_summary( int $post_id ): array {
	clean_post_cache( $post_id );
	$post = get_post( $post_id );
	return array(
		'post_id'       => $post_id,
		'status'        => $post ? $post->post_status : null,
		'post_modified' => $post ? $post->post_modified : null,
	);
}

// ----------------------------------------------------------------------------------- actions

/** {} -> where am I: blog, tables, versions. Cheapest action; also measures the bare load. */
function wpcdc_action_info( array $a ): array {
	global $wpdb, $wp_version, $wp_db_version;
	return array(
		'blog_id'             => get_current_blog_id(),
		'multisite'           => is_multisite(),
		'blogs'               => is_multisite() ? array_map( 'intval', get_sites( array( 'fields' => 'ids' ) ) ) : array( 1 ),
		'prefix'              => $wpdb->prefix,
		'base_prefix'         => $wpdb->base_prefix,
		'posts_table'         => $wpdb->posts,
		'database'            => DB_NAME,
		'wp_version'          => $wp_version,
		'db_version'          => (int) $wp_db_version,
		'php_version'         => PHP_VERSION,
		'siteurl'             => get_option( 'siteurl' ),
		'home'                => get_option( 'home' ),
		'permalink_structure' => get_option( 'permalink_structure' ),
		'timezone'            => wp_timezone_string(),
		'user'                => wp_get_current_user()->user_login,
		'super_admin'         => is_super_admin(),
		'upload_dir'          => wp_upload_dir( null, false )['basedir'],
	);
}

/** {title, content, excerpt?, status=draft, type=post, tags?, categories?, meta?, date?, slug?, parent_id?, author?} -> {post_id, status} */
function wpcdc_action_create_post( array $a ): array {
	$post_id = wpcdc_insert_post( $a );
	return wpcdc_post_summary( $post_id );
}

/** {post_id, title?, content?, excerpt?, status?, date?, slug?, parent_id?} -> {post_id, status} via wp_update_post() */
function wpcdc_action_update_post( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	$postarr = array( 'ID' => $post_id );
	$fields  = array( 'title' => 'post_title', 'content' => 'post_content', 'excerpt' => 'post_excerpt', 'status' => 'post_status', 'slug' => 'post_name' );
	foreach ( $fields as $arg => $field ) {
		if ( isset( $a[ $arg ] ) ) {
			$postarr[ $field ] = (string) $a[ $arg ];
		}
	}
	if ( isset( $a['parent_id'] ) ) {
		$postarr['post_parent'] = (int) $a['parent_id'];
	}
	if ( isset( $a['date'] ) ) {
		$postarr['post_date']     = wpcdc_local_date( $a['date'] );
		$postarr['post_date_gmt'] = get_gmt_from_date( $postarr['post_date'] );
		$postarr['edit_date']     = true;
	}
	wpcdc_ok( wp_update_post( wp_slash( $postarr ), true ), 'wp_update_post' );
	return wpcdc_post_summary( $post_id );
}

/** {post_id, type} -> {post_id, status} via set_post_type(): a post turned into a page, say */
function wpcdc_action_set_post_type( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	wpcdc_ok( set_post_type( $post_id, (string) wpcdc_req( $a, 'type' ) ) ? true : new WP_Error( 'set_post_type', 'no row changed' ), 'set_post_type' );
	return wpcdc_post_summary( $post_id );
}

/**
 * {post_id, via?="wp_publish_post"} -> {post_id, status}
 * via=wp_publish_post (default): the status flip cron and XML-RPC use - one $wpdb->update of
 * post_status, then the transition hooks. It touches neither post_modified nor post_name nor
 * the dates: a draft that never had a date is published with post_date_gmt 0000-00-00 00:00:00
 * and an empty post_name.
 * via=update: wp_update_post(status=publish), what the classic editor's Publish button amounts
 * to - dates, slug and post_modified are filled in and a revision is written.
 */
function wpcdc_action_publish( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	$via     = (string) ( $a['via'] ?? 'wp_publish_post' );
	if ( 'wp_publish_post' === $via ) {
		wp_publish_post( $post_id );
	} elseif ( 'update' === $via ) {
		wpcdc_ok( wp_update_post( array( 'ID' => $post_id, 'post_status' => 'publish' ), true ), 'wp_update_post' );
	} else {
		throw new InvalidArgumentException( "via must be wp_publish_post or update, not '$via'" );
	}
	return wpcdc_post_summary( $post_id );
}

/**
 * {post_id, date?=now+1h} -> {post_id, status, next_run}: status future with a future date via
 * wp_update_post(); WordPress schedules the single cron event publish_future_post (a write to
 * the `cron` option). edit_date=true is what the classic editor's date picker sends; without it
 * wp_update_post() drops the date of a draft.
 */
function wpcdc_action_schedule( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	$date    = wpcdc_local_date( $a['date'] ?? ( time() + HOUR_IN_SECONDS ) );
	wpcdc_ok(
		wp_update_post(
			wp_slash(
				array(
					'ID'            => $post_id,
					'post_status'   => 'future',
					'post_date'     => $date,
					'post_date_gmt' => get_gmt_from_date( $date ),
					'edit_date'     => true,
				)
			),
			true
		),
		'wp_update_post'
	);
	$out             = wpcdc_post_summary( $post_id );
	$out['next_run'] = wp_next_scheduled( 'publish_future_post', array( $post_id ) );
	return $out;
}

/**
 * {post_id} -> {post_id, status, was_due, unscheduled}: what wp-cron.php does for a due
 * publish_future_post event: remove the event from the `cron` option, then run the hook
 * (check_and_publish_future_post() -> wp_publish_post()). If the post is not due yet, the event
 * is still removed and wp_publish_post() is called directly - the same writes cron makes once
 * the time has come (check_and_publish_future_post() itself would just reschedule).
 */
function wpcdc_action_publish_scheduled( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	$post    = get_post( $post_id );
	if ( 'future' !== $post->post_status ) {
		throw new InvalidArgumentException( "post $post_id is {$post->post_status}, not future (scheduled)" );
	}
	$args        = array( $post_id );
	$timestamp   = wp_next_scheduled( 'publish_future_post', $args );
	$unscheduled = false;
	if ( $timestamp ) {
		$unscheduled = true === wp_unschedule_event( $timestamp, 'publish_future_post', $args, true );
	}
	$due = strtotime( $post->post_date_gmt . ' GMT' ) <= time();
	if ( $due ) {
		do_action_ref_array( 'publish_future_post', $args );
	} else {
		wp_publish_post( $post_id );
	}
	$out                = wpcdc_post_summary( $post_id );
	$out['was_due']     = $due;
	$out['unscheduled'] = $unscheduled;
	return $out;
}

/** {post_id} -> {post_id, status} via wp_trash_post() (writes _wp_trash_meta_status/_time) */
function wpcdc_action_trash( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	wpcdc_ok( wp_trash_post( $post_id ), 'wp_trash_post' );
	return wpcdc_post_summary( $post_id );
}

/**
 * {post_id, restore_previous_status?=false} -> {post_id, status} via wp_untrash_post().
 * Since WP 5.6 an untrashed post comes back as a DRAFT, not with its pre-trash status, unless
 * the wp_untrash_post_status filter says otherwise; WordPress ships the filter callback
 * wp_untrash_post_set_previous_status for that, used when restore_previous_status is true.
 */
function wpcdc_action_untrash( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	if ( ! empty( $a['restore_previous_status'] ) ) {
		add_filter( 'wp_untrash_post_status', 'wp_untrash_post_set_previous_status', 10, 3 );
	}
	wpcdc_ok( wp_untrash_post( $post_id ), 'wp_untrash_post' );
	return wpcdc_post_summary( $post_id );
}

/** {post_id, force?=true} -> {post_id, deleted} via wp_delete_post() (meta, terms, revisions, comments go too) */
function wpcdc_action_delete( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	$force   = ! array_key_exists( 'force', $a ) || ! empty( $a['force'] );
	wpcdc_ok( wp_delete_post( $post_id, $force ), 'wp_delete_post' );
	clean_post_cache( $post_id );
	return array(
		'post_id' => $post_id,
		'deleted' => null === get_post( $post_id ),
		'status'  => get_post_status( $post_id ) ? get_post_status( $post_id ) : null,
	);
}

/** {post_id, tags: [names], append?=false} -> {post_id, term_taxonomy_ids} via wp_set_post_tags() */
function wpcdc_action_set_tags( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	$tt_ids  = wpcdc_ok( wp_set_post_tags( $post_id, array_map( 'strval', (array) ( $a['tags'] ?? array() ) ), ! empty( $a['append'] ) ), 'wp_set_post_tags' );
	return array( 'post_id' => $post_id, 'term_taxonomy_ids' => array_map( 'intval', (array) $tt_ids ) );
}

/** {post_id, categories: [names], append?=false} -> {post_id, term_ids, term_taxonomy_ids} via wp_set_post_categories() */
function wpcdc_action_set_categories( array $a ): array {
	$post_id  = wpcdc_post_id( $a );
	$term_ids = wpcdc_term_ids( (array) ( $a['categories'] ?? array() ), 'category' );
	$tt_ids   = wpcdc_ok( wp_set_post_categories( $post_id, $term_ids, ! empty( $a['append'] ) ), 'wp_set_post_categories' );
	return array(
		'post_id'           => $post_id,
		'term_ids'          => $term_ids,
		'term_taxonomy_ids' => is_array( $tt_ids ) ? array_map( 'intval', $tt_ids ) : array(),
	);
}

/** The term arguments of $a that wp_insert_term()/wp_update_term() take, slashed as they expect. */
function wpcdc_term_args( array $a ): array {
	return wp_slash( array_intersect_key( $a, array_flip( array( 'name', 'slug', 'parent', 'description' ) ) ) );
}

/** {name, taxonomy=post_tag, slug?, parent?, description?} -> {term_id, term_taxonomy_id} via wp_insert_term() */
function wpcdc_action_insert_term( array $a ): array {
	$taxonomy = (string) ( $a['taxonomy'] ?? 'post_tag' );
	$term     = wpcdc_ok( wp_insert_term( wp_slash( (string) wpcdc_req( $a, 'name' ) ), $taxonomy, wpcdc_term_args( $a ) ), 'wp_insert_term' );
	return array( 'term_id' => (int) $term['term_id'], 'term_taxonomy_id' => (int) $term['term_taxonomy_id'] );
}

/**
 * {term_id, taxonomy=post_tag, name?, slug?, parent?, description?} -> {term_id, term_taxonomy_id}
 * via wp_update_term(), what the term edit screen saves (it writes wp_terms, then wp_term_taxonomy).
 */
function wpcdc_action_update_term( array $a ): array {
	$taxonomy = (string) ( $a['taxonomy'] ?? 'post_tag' );
	$term     = wpcdc_ok( wp_update_term( (int) wpcdc_req( $a, 'term_id' ), $taxonomy, wpcdc_term_args( $a ) ), 'wp_update_term' );
	return array( 'term_id' => (int) $term['term_id'], 'term_taxonomy_id' => (int) $term['term_taxonomy_id'] );
}

/** {term_id, taxonomy=post_tag} -> {deleted} via wp_delete_term() (its posts lose it first; children move up) */
function wpcdc_action_delete_term( array $a ): array {
	$result = wp_delete_term( (int) wpcdc_req( $a, 'term_id' ), (string) ( $a['taxonomy'] ?? 'post_tag' ) );
	wpcdc_ok( $result, 'wp_delete_term' );
	return array( 'deleted' => true === $result );
}

/** {post_id, key, value, unique?=false} -> {meta_id} via add_post_meta() (arrays/objects get PHP-serialized) */
function wpcdc_action_add_meta( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	$meta_id = wpcdc_ok( add_post_meta( $post_id, wp_slash( (string) wpcdc_req( $a, 'key' ) ), wp_slash( $a['value'] ?? '' ), ! empty( $a['unique'] ) ), 'add_post_meta' );
	return array( 'post_id' => $post_id, 'meta_id' => (int) $meta_id );
}

/** {post_id, key, value, prev_value?} -> {changed, meta_id?} via update_post_meta() (adds when missing) */
function wpcdc_action_update_meta( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	$result  = update_post_meta( $post_id, wp_slash( (string) wpcdc_req( $a, 'key' ) ), wp_slash( $a['value'] ?? '' ), $a['prev_value'] ?? '' );
	return array(
		'post_id' => $post_id,
		'changed' => false !== $result,
		'meta_id' => is_int( $result ) ? $result : null,
	);
}

/** {post_id, key, value?} -> {deleted} via delete_post_meta() (without value: every row of the key) */
function wpcdc_action_delete_meta( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	$deleted = delete_post_meta( $post_id, wp_slash( (string) wpcdc_req( $a, 'key' ) ), array_key_exists( 'value', $a ) ? wp_slash( $a['value'] ) : '' );
	return array( 'post_id' => $post_id, 'deleted' => (bool) $deleted );
}

/** {name, value, autoload?} -> {changed} via update_option() on the current blog */
function wpcdc_action_update_option( array $a ): array {
	$autoload = array_key_exists( 'autoload', $a ) ? ( $a['autoload'] ? 'yes' : 'no' ) : null;
	$changed  = update_option( (string) wpcdc_req( $a, 'name' ), $a['value'] ?? '', $autoload );
	return array( 'changed' => (bool) $changed );
}

/** {name} -> {value} via get_option() on the current blog (false when the option does not exist) */
function wpcdc_action_get_option( array $a ): array {
	return array( 'value' => get_option( (string) wpcdc_req( $a, 'name' ) ) );
}

/**
 * {filename, parent_id?, set_thumbnail_of?, title?} -> {attachment_id, file, url, mime_type}
 * Upload-like, as async-upload.php / media_handle_upload() would: the file is written into the
 * uploads dir (wp_upload_bits(): year/month folders, unique name; sites/N/ on blog N), then
 * wp_insert_attachment() (+ _wp_attached_file), wp_generate_attachment_metadata() and
 * wp_update_attachment_metadata() (+ _wp_attachment_metadata), optionally set_post_thumbnail()
 * (+ _thumbnail_id on the other post).
 */
function wpcdc_action_upload_attachment( array $a ): array {
	require_once ABSPATH . 'wp-admin/includes/image.php';
	require_once ABSPATH . 'wp-admin/includes/file.php';
	require_once ABSPATH . 'wp-admin/includes/media.php';
	$filename = wp_basename( (string) wpcdc_req( $a, 'filename' ) );
	$upload   = wp_upload_bits( $filename, null, wpcdc_file_bytes( $filename ) );
	if ( ! empty( $upload['error'] ) ) {
		throw new RuntimeException( 'wp_upload_bits: ' . $upload['error'] );
	}
	$type          = wp_check_filetype( $upload['file'] );
	$parent_id     = isset( $a['parent_id'] ) ? wpcdc_post_id( $a, 'parent_id' ) : 0;
	$attachment_id = (int) wpcdc_ok(
		wp_insert_attachment(
			wp_slash(
				array(
					'post_mime_type' => $type['type'],
					'post_title'     => (string) ( $a['title'] ?? preg_replace( '/\.[^.]+$/', '', wp_basename( $upload['file'] ) ) ),
					'post_content'   => '',
					'post_status'    => 'inherit',
					'guid'           => $upload['url'],
				)
			),
			$upload['file'],
			$parent_id,
			true
		),
		'wp_insert_attachment'
	);
	wp_update_attachment_metadata( $attachment_id, wp_generate_attachment_metadata( $attachment_id, $upload['file'] ) );
	if ( ! empty( $a['set_thumbnail_of'] ) ) {
		wpcdc_ok( set_post_thumbnail( wpcdc_post_id( $a, 'set_thumbnail_of' ), $attachment_id ), 'set_post_thumbnail' );
	}
	return array(
		'attachment_id' => $attachment_id,
		'file'          => $upload['file'],
		'url'           => $upload['url'],
		'mime_type'     => $type['type'],
	);
}

/**
 * {post_ids: [...], status?, tags?: [names], categories?: [names], post_type?=post}
 *   -> {updated: [ids], skipped: [ids], locked: [ids]}
 * What the posts list's Bulk Edit does: wp-admin/edit.php hands the $_REQUEST of the inline form
 * to bulk_edit_posts() (wp-admin/includes/post.php) - used here for real, with the form's "no
 * change" values (-1 / '') for the fields not given. Note bulk edit ADDS tags and categories to
 * each post's existing ones, it never removes; each post goes through wp_update_post() and gets
 * _edit_last.
 */
function wpcdc_action_bulk_edit( array $a ): array {
	$ids = array_map( 'intval', (array) wpcdc_req( $a, 'post_ids' ) );
	$req = array(
		'action'         => 'edit',
		'bulk_edit'      => 'Update',
		'screen'         => 'edit-' . ( $a['post_type'] ?? 'post' ),
		'post_view'      => 'list',
		'post_type'      => (string) ( $a['post_type'] ?? 'post' ),
		'post'           => $ids,
		'_status'        => isset( $a['status'] ) ? (string) $a['status'] : '-1',
		'post_author'    => '-1',
		'comment_status' => '',
		'ping_status'    => '',
		'sticky'         => '-1',
		'post_format'    => '-1',
	);
	if ( ! empty( $a['tags'] ) ) {
		$req['tax_input'] = array( 'post_tag' => implode( ', ', array_map( 'strval', (array) $a['tags'] ) ) );
	}
	if ( ! empty( $a['categories'] ) ) {
		$req['post_category'] = array_map( 'strval', wpcdc_term_ids( (array) $a['categories'], 'category' ) );
	}
	$_GET     = wp_slash( $req );
	$_REQUEST = $_GET;
	$done     = bulk_edit_posts( $_REQUEST );
	return array(
		'updated' => array_map( 'intval', $done['updated'] ),
		'skipped' => array_map( 'intval', $done['skipped'] ),
		'locked'  => array_map( 'intval', $done['locked'] ),
	);
}

/**
 * {count=5, with_terms=true, with_meta=true, status=publish, type=post} -> {post_ids}
 * Demo content, deterministic per index (titles, block-markup content, 2 tags, 1 category,
 * a scalar and a serialized meta value), all in this one process.
 */
function wpcdc_action_seed( array $a ): array {
	$count      = max( 0, (int) ( $a['count'] ?? 5 ) );
	$with_terms = ! array_key_exists( 'with_terms', $a ) || ! empty( $a['with_terms'] );
	$with_meta  = ! array_key_exists( 'with_meta', $a ) || ! empty( $a['with_meta'] );
	$tags       = array( 'binlog', 'kafka', 'mariadb', 'cdc', 'wordpress', 'php', 'python', 'events' );
	$categories = array( 'News', 'Engineering', 'Releases' );
	$words      = array( 'Streaming', 'Capturing', 'Replaying', 'Indexing', 'Publishing', 'Auditing' );
	$ids        = array();
	for ( $i = 0; $i < $count; $i++ ) {
		$n    = count( $ids ) + 1;
		$word = $words[ $i % count( $words ) ];
		$post = array(
			'title'   => sprintf( 'Seed post %d: %s WordPress changes', $n, $word ),
			'content' => sprintf(
				"<!-- wp:paragraph -->\n<p>%s every change of post %d, with \"quotes\", a backslash \\ and ünïcödé.</p>\n<!-- /wp:paragraph -->\n\n<!-- wp:paragraph -->\n<p>Second paragraph.</p>\n<!-- /wp:paragraph -->",
				$word,
				$n
			),
			'excerpt' => "Seed excerpt $n",
			'status'  => (string) ( $a['status'] ?? 'publish' ),
			'type'    => (string) ( $a['type'] ?? 'post' ),
		);
		if ( $with_terms ) {
			$post['tags']       = array( $tags[ $i % count( $tags ) ], $tags[ ( $i + 3 ) % count( $tags ) ] );
			$post['categories'] = array( $categories[ $i % count( $categories ) ] );
		}
		if ( $with_meta ) {
			$post['meta'] = array(
				'wpcdc_seed'    => $i,
				'wpcdc_rating'  => ( $i * 7 ) % 5 + 1,
				'wpcdc_sources' => array( 'binlog', 'kafka', array( 'position' => $i ) ),
			);
		}
		$ids[] = wpcdc_insert_post( $post );
	}
	return array( 'post_ids' => $ids );
}

/**
 * {type?=post} -> {post_id, status, lock}: opening "Add New" in the block editor.
 * post-new.php creates the auto-draft with get_default_post_to_edit($type, true) (and schedules
 * the daily auto-draft cleanup the first time); edit-form-blocks.php then takes the post lock
 * (wp_set_post_lock -> _edit_lock meta).
 */
function wpcdc_action_editor_new( array $a ): array {
	$post = get_default_post_to_edit( (string) ( $a['type'] ?? 'post' ), true );
	$lock = wp_set_post_lock( $post->ID );
	$out  = wpcdc_post_summary( (int) $post->ID );
	$out['lock'] = $lock ? implode( ':', $lock ) : null;
	return $out;
}

/**
 * {post_id, title?, content?, excerpt?, status?, slug?, date?, tags?: [names], categories?: [names]}
 *   -> {post_id, status, post_modified, http_status}
 * The block editor's Save/Publish: POST /wp/v2/<type rest_base>/ID with a JSON body, through
 * rest_do_request() (REST_REQUEST is defined for this process). Tag/category names become ids
 * through the REST term endpoints first, as the editor's term selectors do.
 */
function wpcdc_action_rest_save( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	$body    = array( 'id' => $post_id );
	foreach ( array( 'title', 'content', 'excerpt', 'status', 'slug' ) as $field ) {
		if ( isset( $a[ $field ] ) ) {
			$body[ $field ] = (string) $a[ $field ];
		}
	}
	if ( isset( $a['date'] ) ) {
		$body['date'] = str_replace( ' ', 'T', wpcdc_local_date( $a['date'] ) );
	}
	if ( isset( $a['tags'] ) ) {
		$body['tags'] = wpcdc_rest_term_ids( (array) $a['tags'], 'post_tag' );
	}
	if ( isset( $a['categories'] ) ) {
		$body['categories'] = wpcdc_rest_term_ids( (array) $a['categories'], 'category' );
	}
	list( $status, $data ) = wpcdc_rest( 'POST', wpcdc_rest_post_route( $post_id ) . '/' . $post_id, $body );
	$out                = wpcdc_post_summary( $post_id );
	$out['http_status'] = $status;
	$out['rest_status'] = $data['status'] ?? null;
	return $out;
}

/**
 * {post_id, content?, title?, excerpt?} -> {post_id, autosave_id, autosave_type, status}
 * The editor's autosave: POST /wp/v2/<type>/ID/autosaves with title, content and excerpt (the
 * editor sends all three; missing ones default to the post's current values). The controller
 * defines DOING_AUTOSAVE. For the author's own draft it UPDATES THE POST ITSELF (no revision);
 * otherwise it writes a revision row "<ID>-autosave-v1" (post_type revision, status inherit).
 */
function wpcdc_action_autosave( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	$post    = get_post( $post_id );
	$body    = array(
		'id'      => $post_id,
		'title'   => (string) ( $a['title'] ?? $post->post_title ),
		'content' => (string) ( $a['content'] ?? $post->post_content ),
		'excerpt' => (string) ( $a['excerpt'] ?? $post->post_excerpt ),
	);
	list( , $data ) = wpcdc_rest( 'POST', wpcdc_rest_post_route( $post_id ) . '/' . $post_id . '/autosaves', $body );
	$autosave_id      = (int) $data['id'];
	$out              = wpcdc_post_summary( $post_id );
	$out['autosave_id']   = $autosave_id;
	$out['autosave_type'] = get_post_type( $autosave_id );
	return $out;
}

/**
 * {post_id, original_status?} -> {post_id, status, post_modified}
 * The block editor's second request after every save when the screen has (classic) meta boxes:
 * it POSTs the hidden "metabox-base-form" (action=editpost, post_ID, original_post_status, ...)
 * plus comment_status/ping_status/post_author/sticky to post.php?meta-box-loader=1, which runs
 * edit_post(). No title or content in it, yet wp_update_post() runs again: post_modified is
 * bumped again, _edit_last and _edit_lock are (re)written. original_status is the status the
 * form was rendered with (e.g. auto-draft when the editor was opened on a new post).
 */
function wpcdc_action_metabox_save( array $a ): array {
	$post_id  = wpcdc_post_id( $a );
	$post     = get_post( $post_id );
	$original = (string) ( $a['original_status'] ?? $post->post_status );
	$form     = array(
		'_wpnonce'             => wp_create_nonce( 'update-post_' . $post_id ),
		'_wp_http_referer'     => '/wp-admin/post.php?post=' . $post_id . '&action=edit',
		'user_ID'              => (string) get_current_user_id(),
		'action'               => 'editpost',
		'originalaction'       => 'editpost',
		'post_type'            => $post->post_type,
		'original_post_status' => $original,
		'referredby'           => '',
		'post_ID'              => (string) $post_id,
		'meta-box-order-nonce' => wp_create_nonce( 'meta-box-order' ),
		'closedpostboxesnonce' => wp_create_nonce( 'closedpostboxes' ),
		'samplepermalinknonce' => wp_create_nonce( 'samplepermalink' ),
		// Appended by the editor's JS (edit-post store, requestMetaBoxUpdates).
		'comment_status'       => $post->comment_status,
		'ping_status'          => $post->ping_status,
		'post_author'          => (string) $post->post_author,
	);
	if ( 'auto-draft' === $original ) {
		$form['auto_draft'] = '1';
	}
	if ( is_sticky( $post_id ) ) {
		$form['sticky'] = 'sticky';
	}
	$_GET     = wp_slash(
		array(
			'post'                  => (string) $post_id,
			'action'                => 'edit',
			'meta-box-loader'       => '1',
			'meta-box-loader-nonce' => wp_create_nonce( 'meta-box-loader' ),
		)
	);
	$_POST    = wp_slash( $form );
	$_REQUEST = array_merge( $_GET, $_POST );
	check_admin_referer( 'update-post_' . $post_id );
	edit_post();
	return wpcdc_post_summary( $post_id );
}

/** {post_id} -> {post_id, lock}: the heartbeat refreshing the post lock (wp_set_post_lock -> _edit_lock "time:user"). */
function wpcdc_action_heartbeat_lock( array $a ): array {
	$post_id = wpcdc_post_id( $a );
	$lock    = wpcdc_ok( wp_set_post_lock( $post_id ), 'wp_set_post_lock' );
	return array( 'post_id' => $post_id, 'lock' => implode( ':', $lock ) );
}

/**
 * {filename, post_id?, title?} -> {attachment_id, post_id, mime_type, source_url}
 * A drag-and-drop upload in the block editor: POST /wp/v2/media with the raw bytes and a
 * Content-Disposition filename; the controller sideloads the file into uploads, inserts the
 * attachment (parent = post_id) and generates its metadata.
 */
function wpcdc_action_rest_upload( array $a ): array {
	$filename = wp_basename( (string) wpcdc_req( $a, 'filename' ) );
	$type     = wp_check_filetype( $filename );
	if ( ! $type['type'] ) {
		throw new InvalidArgumentException( "'$filename': extension not allowed for uploads on this site" );
	}
	$query = array();
	if ( isset( $a['post_id'] ) ) {
		$query['post'] = wpcdc_post_id( $a );
	}
	if ( isset( $a['title'] ) ) {
		$query['title'] = (string) $a['title'];
	}
	list( , $data ) = wpcdc_rest(
		'POST',
		'/wp/v2/media',
		null,
		$query,
		array(
			'Content-Type'        => $type['type'],
			'Content-Disposition' => 'attachment; filename="' . $filename . '"',
		),
		wpcdc_file_bytes( $filename )
	);
	return array(
		'attachment_id' => (int) $data['id'],
		'post_id'       => (int) ( $data['post'] ?? 0 ),
		'mime_type'     => $data['mime_type'] ?? null,
		'source_url'    => $data['source_url'] ?? null,
	);
}

/**
 * {post_id} -> {post, meta, terms, revisions}: the post as the DATABASE holds it (raw row of
 * <prefix>posts with integer columns as ints, every <prefix>postmeta row as {key: [raw
 * meta_value strings, in meta_id order]}, term relationships with taxonomy/slug/name/ids, and
 * revision rows) - so tests can compare driver results with what the CDC saw. post is null
 * when the row does not exist.
 */
function wpcdc_action_get_post( array $a ): array {
	global $wpdb;
	$post_id = (int) wpcdc_req( $a, 'post_id' );
	$row     = $wpdb->get_row( $wpdb->prepare( "SELECT * FROM {$wpdb->posts} WHERE ID = %d", $post_id ), ARRAY_A );
	if ( $row ) {
		foreach ( array( 'ID', 'post_author', 'post_parent', 'menu_order', 'comment_count' ) as $column ) {
			$row[ $column ] = (int) $row[ $column ];
		}
	}
	$meta = array();
	foreach ( $wpdb->get_results( $wpdb->prepare( "SELECT meta_key, meta_value FROM {$wpdb->postmeta} WHERE post_id = %d ORDER BY meta_id", $post_id ), ARRAY_A ) as $m ) {
		$meta[ $m['meta_key'] ][] = $m['meta_value'];
	}
	$terms = array();
	$sql   = "SELECT tt.taxonomy, t.slug, t.name, t.term_id, tt.term_taxonomy_id
		FROM {$wpdb->term_relationships} tr
		JOIN {$wpdb->term_taxonomy} tt ON tt.term_taxonomy_id = tr.term_taxonomy_id
		JOIN {$wpdb->terms} t ON t.term_id = tt.term_id
		WHERE tr.object_id = %d ORDER BY tt.taxonomy, t.slug";
	foreach ( $wpdb->get_results( $wpdb->prepare( $sql, $post_id ), ARRAY_A ) as $t ) {
		$t['term_id']          = (int) $t['term_id'];
		$t['term_taxonomy_id'] = (int) $t['term_taxonomy_id'];
		$terms[]               = $t;
	}
	$revisions = $wpdb->get_results( $wpdb->prepare( "SELECT ID, post_name, post_status, post_modified FROM {$wpdb->posts} WHERE post_parent = %d AND post_type = 'revision' ORDER BY ID", $post_id ), ARRAY_A );
	foreach ( $revisions as &$revision ) {
		$revision['ID'] = (int) $revision['ID'];
	}
	return array(
		'post'      => $row ? $row : null,
		'meta'      => (object) $meta,
		'terms'     => $terms,
		'revisions' => $revisions,
	);
}

/**
 * {slug, title?} -> {blog_id, created, prefix, url}: a new blog at /<slug>/ on the network via
 * wpmu_create_blog() (wp_insert_site + wp_initialize_site: creates the <prefix>N_ tables,
 * options, roles, a first post/page/comment). Idempotent: an existing blog at that path is
 * returned with created=false.
 */
function wpcdc_action_create_blog( array $a ): array {
	global $wpdb;
	if ( ! is_multisite() ) {
		throw new InvalidArgumentException( 'create_blog needs the multisite network' );
	}
	$slug    = (string) wpcdc_req( $a, 'slug' );
	$network = get_network();
	$path    = $network->path . trim( $slug, '/' ) . '/';
	$blog_id = (int) domain_exists( $network->domain, $path, $network->id );
	$created = false;
	if ( ! $blog_id ) {
		$blog_id = (int) wpcdc_ok(
			wpmu_create_blog( $network->domain, $path, (string) ( $a['title'] ?? ucfirst( $slug ) ), get_current_user_id(), array( 'public' => 1 ), $network->id ),
			'wpmu_create_blog'
		);
		$created = true;
	}
	return array(
		'blog_id' => $blog_id,
		'created' => $created,
		'prefix'  => $wpdb->get_blog_prefix( $blog_id ),
		'url'     => get_home_url( $blog_id, '/' ),
	);
}

/**
 * {post_ids: [ids], post_types?: {name: {slug, hierarchical?}}} -> {links: {id: url|false}}:
 * get_permalink() of each post as an anonymous visitor gets it (no current user: a private post has
 * its plain link), in a fresh process, so nothing is cached from before the last change; on blog N
 * with blog N's permalink settings. post_types are registered first, public, with their rewrite
 * slug and without the structure's front, as a plugin would register them.
 */
function wpcdc_action_permalinks( array $a ): array {
	global $wp_rewrite;
	wp_set_current_user( 0 );
	// switch_to_blog() (driver.php, --blog=N) keeps the main site's WP_Rewrite: a request to blog N
	// would have built it from blog N's permalink_structure.
	$wp_rewrite->init();
	foreach ( (array) ( $a['post_types'] ?? array() ) as $name => $type ) {
		register_post_type(
			(string) $name,
			array(
				'public'       => true,
				'hierarchical' => ! empty( $type['hierarchical'] ),
				'rewrite'      => array( 'slug' => (string) $type['slug'], 'with_front' => false ),
			)
		);
	}
	$links = array();
	foreach ( (array) wpcdc_req( $a, 'post_ids' ) as $id ) {
		$links[ (string) (int) $id ] = get_permalink( (int) $id );
	}
	return array( 'links' => (object) $links );
}

/** {login, nicename?, role=author} -> {user_id, created} via wp_insert_user() (an existing login is returned) */
function wpcdc_action_create_user( array $a ): array {
	$login = (string) wpcdc_req( $a, 'login' );
	$user  = get_user_by( 'login', $login );
	if ( $user ) {
		return array( 'user_id' => (int) $user->ID, 'created' => false );
	}
	$userdata = array(
		'user_login' => $login,
		'user_pass'  => wp_generate_password( 24 ),
		'user_email' => $login . '@example.test',
		'role'       => (string) ( $a['role'] ?? 'author' ),
	);
	if ( isset( $a['nicename'] ) ) {
		$userdata['user_nicename'] = (string) $a['nicename'];
	}
	$user_id = (int) wpcdc_ok( wp_insert_user( $userdata ), 'wp_insert_user' );
	if ( is_multisite() ) {
		add_user_to_blog( get_current_blog_id(), $user_id, $userdata['role'] );
	}
	return array( 'user_id' => $user_id, 'created' => true );
}

/** {user_id, nicename} -> {user_id} via wp_update_user() */
function wpcdc_action_update_user( array $a ): array {
	$user_id = (int) wpcdc_req( $a, 'user_id' );
	wpcdc_ok( wp_update_user( array( 'ID' => $user_id, 'user_nicename' => (string) wpcdc_req( $a, 'nicename' ) ) ), 'wp_update_user' );
	return array( 'user_id' => $user_id );
}
